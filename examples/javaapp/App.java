// App is a stand-in for a Spring Boot + Spring Cloud service, written against
// the plain JDK so it builds offline: it takes a while to start, binds its
// port only once started, registers itself in Nacos (1.x HTTP client
// protocol) and/or Eureka (REST), heartbeats, and on SIGTERM deregisters,
// stops accepting connections, finishes in-flight requests within a timeout
// and exits (143, the JVM's code after SIGTERM). See README.md for flags.

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpHandler;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.net.Inet4Address;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.NetworkInterface;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

public final class App {

    // ---- options ---------------------------------------------------------

    /** Flag name (without --) to default; the environment variable is APP_ + upper snake case. */
    private static final Map<String, String> DEFAULTS = new LinkedHashMap<>();
    private static final Map<String, String> HELP = new LinkedHashMap<>();
    private static final List<String> BOOLEANS = List.of("early-bind", "register-early", "ignore-term");

    private static void opt(String name, String def, String help) {
        DEFAULTS.put(name, def);
        HELP.put(name, help);
    }

    static {
        opt("port", "8080", "HTTP port (0: any free port, logged)");
        opt("bind", "0.0.0.0", "listen address");
        opt("ip", "", "registered IP (default: the bind address, or the first non-loopback IPv4)");
        opt("start-delay", "0", "seconds before the port opens and the app registers (context refresh)");
        opt("latency-ms", "0", "time / takes to answer (per request: /?ms=N)");
        opt("shutdown-timeout", "30", "seconds in-flight requests get after SIGTERM");
        opt("early-bind", "false", "open the port at once (health DOWN, / 503 while starting)");
        opt("register-early", "false", "open the port and register at once, before the start delay ends (implies --early-bind): consumers find the app before it can serve, as Spring Cloud apps that register when the web server starts");
        opt("lazy-init-ms", "0", "the first request to / after start runs a lazy initialisation this long (caches, pools); requests meanwhile wait for it");
        opt("work", "0", "per request to /: parse, sort and map this many records (CPU only; slow while the JIT is cold)");
        opt("grpc-port", "0", "also serve a unary gRPC method (any path) over cleartext HTTP/2 on this port; 0: off");
        opt("ignore-term", "false", "fault injection: log and ignore SIGTERM (only SIGKILL stops the app)");
        opt("service", "javaapp", "service name (Nacos service, default Eureka app)");
        opt("metadata", "", "instance metadata k=v,k=v");
        opt("nacos", "", "Nacos server URL(s), comma separated: register there");
        opt("group", "DEFAULT_GROUP", "Nacos group");
        opt("namespace", "public", "Nacos namespace id");
        opt("cluster", "DEFAULT", "Nacos cluster");
        opt("weight", "1.0", "Nacos weight, 0 to 10000 (0: registered but never picked by weight)");
        opt("instance-enabled", "true", "Nacos instance enabled (false: registered but not served to consumers)");
        opt("nacos-beat", "5", "seconds between Nacos heartbeats");
        opt("eureka", "", "Eureka service URL(s), comma separated (e.g. http://host:8761/eureka)");
        opt("app", "", "Eureka app name (default: --service)");
        opt("instance-id", "", "Eureka instance id (default: ip:app:port)");
        opt("eureka-heartbeat", "30", "seconds between Eureka renewals");
        opt("eureka-initial-status", "UP", "status the app registers with in Eureka: UP, DOWN, STARTING, OUT_OF_SERVICE or UNKNOWN");
        opt("registry-timeout", "5", "seconds per registry request");
    }

    /**
     * Flags that are Spring Cloud registration properties, to the environment
     * variables Spring Boot's relaxed binding reads them from, first found
     * wins: the canonical form (dots to underscores, dashes removed, upper
     * case), then the legacy one (dashes to underscores). They beat APP_*,
     * as the OS environment beats application.properties, where a Spring
     * app would map its own variables (weight: ${APP_WEIGHT:1}).
     */
    static final Map<String, List<String>> SPRING_ENV = Map.of(
            "weight", List.of("SPRING_CLOUD_NACOS_DISCOVERY_WEIGHT"),
            "instance-enabled", List.of("SPRING_CLOUD_NACOS_DISCOVERY_INSTANCEENABLED",
                    "SPRING_CLOUD_NACOS_DISCOVERY_INSTANCE_ENABLED"),
            "eureka-initial-status", List.of("EUREKA_INSTANCE_INITIALSTATUS", "EUREKA_INSTANCE_INITIAL_STATUS"));

    /** Where each option's value came from (--flag or the variable), for error messages; absent: the default. */
    static final Map<String, String> ORIGIN = new LinkedHashMap<>();

    static String envName(String flag) {
        return "APP_" + flag.toUpperCase(Locale.ROOT).replace('-', '_');
    }

    /** The variables an option reads, strongest first. */
    static List<String> envNames(String flag) {
        List<String> l = new ArrayList<>(SPRING_ENV.getOrDefault(flag, List.of()));
        l.add(envName(flag));
        return l;
    }

    /** What set an option's value, for one-line errors: the flag, or the variable it came from. */
    static String origin(String name) {
        return ORIGIN.getOrDefault(name, "--" + name);
    }

    static Map<String, String> parse(String[] args) {
        Map<String, String> o = new LinkedHashMap<>();
        for (Map.Entry<String, String> e : DEFAULTS.entrySet()) {
            o.put(e.getKey(), e.getValue());
            // An empty variable counts as unset (Spring binds it to the default too).
            for (String env : envNames(e.getKey())) {
                String v = System.getenv(env);
                if (v != null && !v.isEmpty()) {
                    o.put(e.getKey(), v);
                    ORIGIN.put(e.getKey(), env);
                    break;
                }
            }
        }
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (a.equals("-h") || a.equals("--help")) {
                usage();
                System.exit(0);
            }
            if (!a.startsWith("--")) {
                die("unexpected argument " + a);
            }
            String name = a.substring(2), value = null;
            int eq = name.indexOf('=');
            if (eq >= 0) {
                value = name.substring(eq + 1);
                name = name.substring(0, eq);
            }
            if (!DEFAULTS.containsKey(name)) {
                die("unknown flag --" + name + " (see --help)");
            }
            if (value == null) {
                if (BOOLEANS.contains(name)) {
                    value = "true";
                } else if (i + 1 < args.length) {
                    value = args[++i];
                } else {
                    die("--" + name + " needs a value");
                }
            }
            o.put(name, value);
            ORIGIN.put(name, "--" + name);
        }
        if (o.get("app").isEmpty()) {
            o.put("app", o.get("service"));
        }
        return o;
    }

    static void usage() {
        System.out.println("usage: java -jar javaapp.jar [--flag value]...  (each flag also reads APP_<FLAG>)");
        for (Map.Entry<String, String> e : DEFAULTS.entrySet()) {
            List<String> spring = SPRING_ENV.getOrDefault(e.getKey(), List.of());
            System.out.printf("  --%-21s %-25s %s%s%s%n", e.getKey(), envName(e.getKey()), HELP.get(e.getKey()),
                    e.getValue().isEmpty() ? "" : " [" + e.getValue() + "]",
                    spring.isEmpty() ? "" : "; Spring's " + String.join(" or ", spring) + " beats " + envName(e.getKey()));
        }
    }

    static void die(String msg) {
        System.err.println("javaapp: " + msg);
        System.exit(2);
    }

    /** A non-negative decimal flag (seconds, milliseconds, a weight) times 1000. */
    static long millis(Map<String, String> o, String name) {
        try {
            double v = Double.parseDouble(o.get(name));
            if (v >= 0 && !Double.isInfinite(v)) {
                return Math.round(v * 1000);
            }
        } catch (NumberFormatException e) {
            // reported below
        }
        die(origin(name) + ": want a non-negative number, got " + o.get(name));
        return 0;
    }

    static int integer(Map<String, String> o, String name) {
        try {
            return Integer.parseInt(o.get(name));
        } catch (NumberFormatException e) {
            die(origin(name) + ": want an integer, got " + o.get(name));
            return 0;
        }
    }

    /** A Nacos weight: the server takes 0 to 10000 (0 is legal: registered, never picked by weight). */
    static double nacosWeight(Map<String, String> o) {
        try {
            // Spring binds a float the same way (surrounding spaces trimmed).
            double v = Double.parseDouble(o.get("weight").trim());
            if (v >= 0 && v <= 10000) {
                return v;
            }
        } catch (NumberFormatException e) {
            // reported below
        }
        die(origin("weight") + ": want a Nacos weight from 0 to 10000, got " + o.get("weight"));
        return 0;
    }

    /** A boolean as Spring converts one: true/on/yes/1 or false/off/no/0, any case. */
    static boolean springBoolean(Map<String, String> o, String name) {
        switch (o.get(name).trim().toLowerCase(Locale.ROOT)) {
            case "true": case "on": case "yes": case "1":
                return true;
            case "false": case "off": case "no": case "0":
                return false;
            default:
                die(origin(name) + ": want true or false, got " + o.get(name));
                return false;
        }
    }

    static final List<String> EUREKA_STATUSES = List.of("UP", "DOWN", "STARTING", "OUT_OF_SERVICE", "UNKNOWN");

    /**
     * A Eureka InstanceStatus as Spring's lenient enum conversion reads it:
     * case, dashes and underscores do not matter (out-of-service, OutOfService).
     */
    static String eurekaStatus(Map<String, String> o, String name) {
        String want = o.get(name).replaceAll("[^\\p{Alnum}]", "").toLowerCase(Locale.ROOT);
        for (String s : EUREKA_STATUSES) {
            if (s.replace("_", "").toLowerCase(Locale.ROOT).equals(want)) {
                return s;
            }
        }
        die(origin(name) + ": want one of " + String.join(", ", EUREKA_STATUSES) + ", got " + o.get(name));
        return "";
    }

    // ---- logging ---------------------------------------------------------

    static synchronized void log(String event) {
        System.out.println(Instant.now() + " javaapp " + event);
        System.out.flush();
    }

    // ---- state -----------------------------------------------------------

    enum State { STARTING, UP, STOPPING }

    static volatile State state = State.STARTING;
    static final AtomicLong served = new AtomicLong();
    static final Object inflightLock = new Object();
    static int inflight;

    static String ip;
    static int port;
    static String service;
    static long latencyMs;
    static long lazyInitMs;
    static int workRecords;
    static volatile boolean lazyDone;
    static final Object lazyLock = new Object();
    static HttpServer server;
    static final List<Registry> registries = new ArrayList<>();
    static final ScheduledExecutorService beats = Executors.newSingleThreadScheduledExecutor(r -> {
        Thread t = new Thread(r, "registry-heartbeat");
        t.setDaemon(true);
        return t;
    });

    public static void main(String[] args) throws Exception {
        final long t0 = System.currentTimeMillis();
        Map<String, String> o = parse(args);
        port = integer(o, "port");
        String bind = o.get("bind");
        service = o.get("service");
        latencyMs = millis(o, "latency-ms") / 1000;
        lazyInitMs = millis(o, "lazy-init-ms") / 1000;
        workRecords = integer(o, "work");
        int grpcPort = integer(o, "grpc-port");
        ip = o.get("ip").isEmpty() ? localIP(bind) : o.get("ip");
        long startDelay = millis(o, "start-delay");
        long shutdownTimeout = millis(o, "shutdown-timeout");
        Duration regTimeout = Duration.ofMillis(millis(o, "registry-timeout"));
        Map<String, String> metadata = metadata(o.get("metadata"));
        // Checked even when that registry is off, so a bad value never waits for the day it is on.
        double weight = nacosWeight(o);
        boolean instanceEnabled = springBoolean(o, "instance-enabled");
        String initialStatus = eurekaStatus(o, "eureka-initial-status");

        log("starting pid=" + ProcessHandle.current().pid() + " service=" + service + " bind=" + bind
                + " port=" + port + " ip=" + ip + " start-delay=" + startDelay + "ms");
        // Built only when needed: it costs about 0.2 s of start time.
        HttpClient http = o.get("nacos").isEmpty() && o.get("eureka").isEmpty() ? null
                : HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(regTimeout).build();
        if (!o.get("nacos").isEmpty()) {
            registries.add(new Nacos(http, regTimeout, list(o.get("nacos")), o.get("namespace"), o.get("group"),
                    service, o.get("cluster"), weight, instanceEnabled, metadata, millis(o, "nacos-beat")));
        }
        if (!o.get("eureka").isEmpty()) {
            registries.add(new Eureka(http, regTimeout, list(o.get("eureka")), o.get("app"), o.get("instance-id"),
                    initialStatus, metadata, millis(o, "eureka-heartbeat")));
        }

        Runtime.getRuntime().addShutdownHook(new Thread(() -> shutdown(shutdownTimeout), "javaapp-shutdown"));
        if (Boolean.parseBoolean(o.get("ignore-term"))) {
            // A broken app: e.g. a shell entrypoint that swallows the signal.
            sun.misc.Signal.handle(new sun.misc.Signal("TERM"), sig -> log("SIGTERM ignored (--ignore-term)"));
        }

        boolean registerEarly = Boolean.parseBoolean(o.get("register-early"));
        boolean early = registerEarly || Boolean.parseBoolean(o.get("early-bind"));
        if (early) {
            listen(bind);
            if (grpcPort > 0) {
                Grpc.listen(bind, grpcPort);
            }
        }
        if (registerEarly) {
            // Registered while / still answers 503: what gracefulinit's
            // hold has to keep out of rotation until the app is ready.
            for (Registry r : registries) {
                r.start();
            }
        }
        // Context refresh: a Spring Boot app binds its port only at the end of it.
        Thread.sleep(startDelay);
        if (state == State.STOPPING) {
            return;
        }
        if (!early) {
            listen(bind);
            if (grpcPort > 0) {
                Grpc.listen(bind, grpcPort);
            }
        }
        // Spring Cloud registers on WebServerInitializedEvent, then the app is ready.
        if (!registerEarly) {
            for (Registry r : registries) {
                r.start();
            }
        }
        synchronized (App.class) {
            if (state == State.STARTING) {
                state = State.UP;
            }
        }
        log("started in " + (System.currentTimeMillis() - t0) + " ms");
    }

    static List<String> list(String s) {
        List<String> l = new ArrayList<>();
        for (String p : s.split(",")) {
            p = p.trim();
            if (p.isEmpty()) {
                continue;
            }
            if (!p.contains("://")) {
                p = "http://" + p;
            }
            while (p.endsWith("/")) {
                p = p.substring(0, p.length() - 1);
            }
            l.add(p);
        }
        return l;
    }

    static Map<String, String> metadata(String s) {
        Map<String, String> m = new LinkedHashMap<>();
        for (String kv : s.split(",")) {
            int eq = kv.indexOf('=');
            if (eq > 0) {
                m.put(kv.substring(0, eq).trim(), kv.substring(eq + 1).trim());
            }
        }
        return m;
    }

    /** The address to register: the bind address unless it is a wildcard, else the first non-loopback IPv4. */
    static String localIP(String bind) throws IOException {
        InetAddress b = InetAddress.getByName(bind);
        if (!b.isAnyLocalAddress()) {
            return b.getHostAddress();
        }
        for (NetworkInterface ni : Collections.list(NetworkInterface.getNetworkInterfaces())) {
            if (!ni.isUp() || ni.isLoopback()) {
                continue;
            }
            for (InetAddress a : Collections.list(ni.getInetAddresses())) {
                if (a instanceof Inet4Address && !a.isLoopbackAddress() && !a.isLinkLocalAddress()) {
                    return a.getHostAddress();
                }
            }
        }
        return "127.0.0.1";
    }

    // ---- HTTP ------------------------------------------------------------

    static void listen(String bind) throws IOException {
        server = HttpServer.create(new InetSocketAddress(bind, port), 100);
        server.createContext("/", tracked(App::root));
        server.createContext("/actuator/health", tracked(App::health));
        server.createContext("/actuator/info", tracked(ex -> json(ex, 200,
                "{\"app\":{\"name\":" + q(service) + "},\"instance\":" + q(ip + ":" + port) + "}")));
        // Tomcat's default: 200 worker threads, the rest queue.
        server.setExecutor(Executors.newFixedThreadPool(200, r -> {
            Thread t = new Thread(r, "http-worker");
            t.setDaemon(true);
            return t;
        }));
        server.start();
        // --port 0: the kernel picked one; register and report that one.
        port = server.getAddress().getPort();
        log("listening on " + bind + ":" + port);
    }

    /** Counts in-flight exchanges, which the graceful shutdown waits for. */
    static HttpHandler tracked(HttpHandler h) {
        return ex -> {
            synchronized (inflightLock) {
                inflight++;
            }
            try {
                ex.getResponseHeaders().set("X-Instance", ip + ":" + port);
                if (state == State.STOPPING) {
                    // A request on a kept-alive connection after shutdown began:
                    // serve it, but make the client reconnect elsewhere next time.
                    ex.getResponseHeaders().set("Connection", "close");
                }
                h.handle(ex);
            } catch (RuntimeException | IOException e) {
                log("request " + ex.getRequestURI().getPath() + " failed: " + e);
            } finally {
                ex.close();
                synchronized (inflightLock) {
                    inflight--;
                    inflightLock.notifyAll();
                }
            }
        };
    }

    static void root(HttpExchange ex) throws IOException {
        // Read the whole body (large uploads span many segments); the
        // exchange would otherwise drop the connection after a large one.
        ex.getRequestBody().transferTo(java.io.OutputStream.nullOutputStream());
        if (!ex.getRequestURI().getPath().equals("/")) {
            json(ex, 404, "{\"status\":404,\"error\":\"Not Found\",\"path\":" + q(ex.getRequestURI().getPath()) + "}");
            return;
        }
        if (state == State.STARTING) {
            json(ex, 503, "{\"status\":503,\"error\":\"Service Unavailable\",\"path\":\"/\"}");
            return;
        }
        lazyInit();
        if (workRecords > 0) {
            ex.getResponseHeaders().set("X-Work", String.valueOf(work(workRecords, served.get())));
        }
        long ms = latencyMs;
        String query = ex.getRequestURI().getRawQuery();
        if (query != null) {
            for (String kv : query.split("&")) {
                if (kv.startsWith("ms=")) {
                    ms = Long.parseLong(kv.substring(3));
                }
            }
        }
        if (ms > 0) {
            try {
                Thread.sleep(ms);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        long n = served.incrementAndGet();
        text(ex, 200, "hello from " + service + " " + ip + ":" + port + " #" + n + "\n");
    }

    /** The first request after start pays for what the app initialises lazily; others wait for it. */
    static void lazyInit() {
        if (lazyDone || lazyInitMs <= 0) {
            return;
        }
        synchronized (lazyLock) {
            if (lazyDone) {
                return;
            }
            log("lazy initialisation on the first request: " + lazyInitMs + " ms");
            try {
                Thread.sleep(lazyInitMs);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            lazyDone = true;
        }
    }

    /** CPU-only request work: format, parse, sort and group n records. */
    static long work(int n, long seed) {
        java.util.Random rnd = new java.util.Random(seed);
        StringBuilder sb = new StringBuilder(n * 8);
        for (int i = 0; i < n; i++) {
            sb.append("id=").append(rnd.nextInt(1_000_000)).append(';');
        }
        List<Integer> xs = new ArrayList<>(n);
        for (String rec : sb.toString().split(";")) {
            if (rec.startsWith("id=")) {
                xs.add(Integer.parseInt(rec.substring(3)));
            }
        }
        Collections.sort(xs);
        Map<Integer, Integer> buckets = new java.util.HashMap<>();
        xs.forEach(x -> buckets.merge(x % 97, 1, Integer::sum));
        return buckets.size() + (xs.isEmpty() ? 0 : xs.get(xs.size() / 2));
    }

    static void health(HttpExchange ex) throws IOException {
        String path = ex.getRequestURI().getPath();
        State s = state;
        String status;
        if (path.equals("/actuator/health") || path.equals("/actuator/health/")) {
            status = s == State.UP ? "UP" : "DOWN";
        } else if (path.equals("/actuator/health/readiness")) {
            status = s == State.UP ? "UP" : "OUT_OF_SERVICE";
        } else if (path.equals("/actuator/health/liveness")) {
            status = "UP";
        } else {
            json(ex, 404, "{\"status\":404,\"error\":\"Not Found\",\"path\":" + q(path) + "}");
            return;
        }
        json(ex, status.equals("UP") ? 200 : 503, "{\"status\":\"" + status + "\"}");
    }

    static void json(HttpExchange ex, int code, String body) throws IOException {
        send(ex, code, "application/json", body);
    }

    static void text(HttpExchange ex, int code, String body) throws IOException {
        send(ex, code, "text/plain;charset=UTF-8", body);
    }

    static void send(HttpExchange ex, int code, String type, String body) throws IOException {
        byte[] b = body.getBytes(StandardCharsets.UTF_8);
        ex.getResponseHeaders().set("Content-Type", type);
        ex.sendResponseHeaders(code, b.length);
        ex.getResponseBody().write(b);
    }

    // ---- shutdown --------------------------------------------------------

    static void shutdown(long timeoutMs) {
        synchronized (App.class) {
            state = State.STOPPING;
        }
        log("shutdown requested: health DOWN");
        beats.shutdownNow();
        for (Registry r : registries) {
            r.stop();
        }
        Grpc.stopAccepting();
        if (server != null) {
            int active;
            synchronized (inflightLock) {
                active = inflight;
            }
            log("graceful shutdown: stop accepting connections, waiting for " + active
                    + " active request(s) up to " + timeoutMs + " ms");
            // stop() closes the listening socket at once, then blocks until its
            // delay passes; the JVM halts when this hook returns, so the wait
            // below decides how long in-flight requests get.
            HttpServer s = server;
            int delay = (int) Math.min(Integer.MAX_VALUE, timeoutMs / 1000 + 2);
            Thread stopper = new Thread(() -> s.stop(delay), "http-stop");
            stopper.setDaemon(true);
            stopper.start();
            long deadline = System.currentTimeMillis() + timeoutMs;
            synchronized (inflightLock) {
                while (inflight > 0 && System.currentTimeMillis() < deadline) {
                    try {
                        inflightLock.wait(Math.max(1, deadline - System.currentTimeMillis()));
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                        break;
                    }
                }
                active = inflight;
            }
            if (active > 0) {
                log("graceful shutdown aborted with " + active + " active request(s)");
            } else {
                log("graceful shutdown complete");
            }
        }
        Grpc.close();
        log("stopped: served " + served.get() + " request(s)");
    }

    // ---- gRPC ------------------------------------------------------------

    /**
     * A unary gRPC method over cleartext HTTP/2, enough for a real gRPC
     * client: it answers every call (any path) with an empty message and
     * status 0, acknowledges SETTINGS and keepalive PINGs, and returns flow
     * control credit. Request headers are not decoded (any call is the call).
     * On shutdown the listener closes at once; open connections get a
     * GOAWAY when the app stops, as a gRPC server's shutdown does.
     */
    static final class Grpc {
        static volatile java.net.ServerSocket listener;
        static final java.util.Set<Conn> conns = java.util.concurrent.ConcurrentHashMap.newKeySet();
        static final byte[] PREFACE = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".getBytes(StandardCharsets.US_ASCII);
        // HPACK: :status 200 (static index 8), then content-type as a literal without indexing.
        static final byte[] HEADERS = hpack(new byte[] {(byte) 0x88}, "content-type", "application/grpc");
        static final byte[] TRAILERS = hpack(new byte[0], "grpc-status", "0");

        static byte[] hpack(byte[] prefix, String name, String value) {
            java.io.ByteArrayOutputStream b = new java.io.ByteArrayOutputStream();
            b.writeBytes(prefix);
            b.write(0);
            b.write(name.length());
            b.writeBytes(name.getBytes(StandardCharsets.US_ASCII));
            b.write(value.length());
            b.writeBytes(value.getBytes(StandardCharsets.US_ASCII));
            return b.toByteArray();
        }

        static void listen(String bind, int port) throws IOException {
            java.net.ServerSocket s = new java.net.ServerSocket();
            s.setReuseAddress(true);
            s.bind(new InetSocketAddress(bind, port), 100);
            listener = s;
            Thread t = new Thread(() -> {
                while (true) {
                    java.net.Socket c;
                    try {
                        c = s.accept();
                    } catch (IOException e) {
                        return;
                    }
                    Conn conn = new Conn(c);
                    conns.add(conn);
                    Thread ct = new Thread(conn::serve, "grpc-conn");
                    ct.setDaemon(true);
                    ct.start();
                }
            }, "grpc-accept");
            t.setDaemon(true);
            t.start();
            log("grpc listening on " + bind + ":" + s.getLocalPort());
        }

        static void stopAccepting() {
            java.net.ServerSocket s = listener;
            if (s != null) {
                try {
                    s.close();
                } catch (IOException e) {
                    // closing anyway
                }
            }
        }

        static void close() {
            for (Conn c : conns) {
                c.goaway();
            }
        }

        static final class Conn {
            final java.net.Socket sock;
            java.io.OutputStream out;
            int lastStream;
            int calls, pings;

            Conn(java.net.Socket sock) {
                this.sock = sock;
            }

            synchronized void frame(int type, int flags, int stream, byte[] payload) throws IOException {
                byte[] h = {(byte) (payload.length >>> 16), (byte) (payload.length >>> 8), (byte) payload.length,
                        (byte) type, (byte) flags, (byte) (stream >>> 24), (byte) (stream >>> 16), (byte) (stream >>> 8), (byte) stream};
                out.write(h);
                out.write(payload);
                out.flush();
            }

            static byte[] int32(int v) {
                return new byte[] {(byte) (v >>> 24), (byte) (v >>> 16), (byte) (v >>> 8), (byte) v};
            }

            void goaway() {
                try {
                    byte[] p = new byte[8];
                    System.arraycopy(int32(lastStream), 0, p, 0, 4);
                    frame(7, 0, 0, p);
                    sock.close();
                } catch (IOException | RuntimeException e) {
                    // the peer went first
                }
            }

            void answer(int stream) throws IOException {
                if (latencyMs > 0) {
                    try {
                        Thread.sleep(latencyMs);
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                }
                served.incrementAndGet();
                calls++;
                frame(1, 0x4, stream, HEADERS);
                frame(0, 0, stream, new byte[5]);
                frame(1, 0x5, stream, TRAILERS);
            }

            void serve() {
                try (sock) {
                    sock.setTcpNoDelay(true);
                    java.io.DataInputStream in = new java.io.DataInputStream(new java.io.BufferedInputStream(sock.getInputStream()));
                    out = new java.io.BufferedOutputStream(sock.getOutputStream());
                    byte[] preface = new byte[PREFACE.length];
                    in.readFully(preface);
                    if (!java.util.Arrays.equals(preface, PREFACE)) {
                        return;
                    }
                    frame(4, 0, 0, new byte[0]);
                    while (true) {
                        int len = in.readUnsignedByte() << 16 | in.readUnsignedByte() << 8 | in.readUnsignedByte();
                        int type = in.readUnsignedByte(), flags = in.readUnsignedByte();
                        int stream = in.readInt() & 0x7fffffff;
                        byte[] p = new byte[len];
                        in.readFully(p);
                        switch (type) {
                            case 0: // DATA: give the credit back, answer at the end of the request
                                if (len > 0) {
                                    frame(8, 0, 0, int32(len));
                                }
                                if ((flags & 1) != 0) {
                                    lastStream = stream;
                                    answer(stream);
                                }
                                break;
                            case 1: // HEADERS
                                if ((flags & 1) != 0) {
                                    lastStream = stream;
                                    answer(stream);
                                }
                                break;
                            case 4: // SETTINGS
                                if ((flags & 1) == 0) {
                                    frame(4, 1, 0, new byte[0]);
                                }
                                break;
                            case 6: // PING (keepalive): acknowledged, not a call
                                if ((flags & 1) == 0) {
                                    pings++;
                                    frame(6, 1, 0, p);
                                }
                                break;
                            case 7: // GOAWAY
                                return;
                            default: // WINDOW_UPDATE, RST_STREAM, PRIORITY, CONTINUATION
                                break;
                        }
                    }
                } catch (IOException e) {
                    // the connection ended
                } finally {
                    conns.remove(this);
                    log("grpc connection from " + sock.getRemoteSocketAddress() + " closed: calls=" + calls + " pings=" + pings);
                }
            }
        }
    }

    // ---- registries ------------------------------------------------------

    abstract static class Registry {
        final HttpClient http;
        final Duration timeout;
        final List<String> servers;
        volatile boolean registered;
        private boolean stopped;

        Registry(HttpClient http, Duration timeout, List<String> servers) {
            this.http = http;
            this.timeout = timeout;
            this.servers = servers;
        }

        abstract String name();

        abstract long beatMillis();

        /** Registers; true on success. */
        abstract boolean register();

        /** One heartbeat; re-registers when the server no longer knows the instance. */
        abstract void beat();

        abstract void deregister();

        void start() {
            tick(true);
            beats.scheduleWithFixedDelay(() -> tick(false), beatMillis(), beatMillis(), TimeUnit.MILLISECONDS);
        }

        /** Registers or heartbeats; serialized with stop so nothing registers after the deregistration. */
        synchronized void tick(boolean first) {
            if (stopped) {
                return;
            }
            try {
                if (first || !registered) {
                    register();
                } else {
                    beat();
                }
            } catch (RuntimeException e) {
                log(name() + " heartbeat error: " + e);
            }
        }

        synchronized void stop() {
            stopped = true;
            if (registered) {
                deregister();
            }
        }

        /** Sends req to each server in turn until one answers; null if none did. */
        HttpResponse<String> call(String method, String pathAndQuery, String contentType, String body) {
            Exception last = null;
            for (String base : servers) {
                URI u = URI.create(base + pathAndQuery);
                HttpRequest.Builder b = HttpRequest.newBuilder(withoutUserInfo(u)).timeout(timeout);
                if (u.getRawUserInfo() != null) {
                    String user = urlDecode(u.getRawUserInfo());
                    b.header("Authorization", "Basic "
                            + Base64.getEncoder().encodeToString(user.getBytes(StandardCharsets.UTF_8)));
                }
                headers(b);
                if (contentType != null) {
                    b.header("Content-Type", contentType);
                }
                b.method(method, body == null ? HttpRequest.BodyPublishers.noBody()
                        : HttpRequest.BodyPublishers.ofString(body, StandardCharsets.UTF_8));
                try {
                    return http.send(b.build(), HttpResponse.BodyHandlers.ofString());
                } catch (IOException e) {
                    last = e;
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    last = e;
                    break;
                }
            }
            log(name() + " " + method + " " + redact(pathAndQuery) + " failed on all servers: " + last);
            return null;
        }

        void headers(HttpRequest.Builder b) {
        }

        static URI withoutUserInfo(URI u) {
            if (u.getRawUserInfo() == null) {
                return u;
            }
            return URI.create(u.getScheme() + "://" + u.getHost() + (u.getPort() >= 0 ? ":" + u.getPort() : "")
                    + u.getRawPath() + (u.getRawQuery() != null ? "?" + u.getRawQuery() : ""));
        }

        static String urlDecode(String s) {
            return java.net.URLDecoder.decode(s, StandardCharsets.UTF_8);
        }

        static String redact(String s) {
            return s.replaceAll("(?i)(password|accessToken)=[^&]*", "$1=***");
        }

        static boolean ok(HttpResponse<String> r) {
            return r != null && r.statusCode() / 100 == 2;
        }

        static String describe(HttpResponse<String> r) {
            if (r == null) {
                return "no server reachable";
            }
            String b = r.body() == null ? "" : r.body().replaceAll("\\s+", " ").trim();
            return "HTTP " + r.statusCode() + (b.isEmpty() ? "" : ": " + (b.length() > 200 ? b.substring(0, 200) : b));
        }
    }

    /** Nacos, the way a 1.x Java client does it over HTTP v1. */
    static final class Nacos extends Registry {
        final String namespace, group, groupedService, cluster, metadataJson;
        final double weight;
        final boolean enabled;
        final long beatMs;
        volatile boolean lightBeat;

        Nacos(HttpClient http, Duration timeout, List<String> servers, String namespace, String group,
                String service, String cluster, double weight, boolean enabled, Map<String, String> metadata,
                long beatMs) {
            super(http, timeout, servers);
            this.namespace = namespace;
            this.group = group;
            this.groupedService = service.contains("@@") ? service : group + "@@" + service;
            this.cluster = cluster;
            this.weight = weight;
            this.enabled = enabled;
            Map<String, String> md = new LinkedHashMap<>(metadata);
            md.putIfAbsent("preserved.register.source", "SPRING_CLOUD");
            this.metadataJson = jsonObject(md);
            this.beatMs = beatMs;
        }

        @Override
        String name() {
            return "nacos";
        }

        @Override
        long beatMillis() {
            return beatMs;
        }

        @Override
        void headers(HttpRequest.Builder b) {
            b.header("User-Agent", "Nacos-Java-Client:v1.4.6");
            b.header("Client-Version", "v1.4.6");
            b.header("Request-Module", "Naming");
        }

        String base() {
            return form("namespaceId", namespace, "serviceName", groupedService, "clusterName", cluster,
                    "ip", ip, "port", String.valueOf(port));
        }

        /** Registers (again, after a heartbeat found the instance gone) with the configured weight and enabled. */
        @Override
        boolean register() {
            String body = base() + "&" + form("groupName", group, "weight", String.valueOf(weight),
                    "enable", String.valueOf(enabled), "healthy", "true", "ephemeral", "true", "metadata", metadataJson);
            HttpResponse<String> r = call("POST", "/nacos/v1/ns/instance", FORM, body);
            registered = ok(r);
            lightBeat = false;
            log(registered ? "nacos registered " + groupedService + " " + ip + ":" + port + " namespace=" + namespace
                    + " weight=" + weight + " enabled=" + enabled
                    : "nacos register failed: " + describe(r));
            return registered;
        }

        @Override
        void beat() {
            String body = lightBeat ? "" : form("beat", "{\"serviceName\":" + q(groupedService) + ",\"ip\":" + q(ip)
                    + ",\"port\":" + port + ",\"cluster\":" + q(cluster) + ",\"weight\":" + weight
                    + ",\"metadata\":" + metadataJson + ",\"scheduled\":false,\"period\":" + beatMs
                    + ",\"stopped\":false}");
            HttpResponse<String> r = call("PUT", "/nacos/v1/ns/instance/beat?" + base(), FORM, body);
            if (r == null) {
                return;
            }
            String b = r.body() == null ? "" : r.body();
            Matcher code = Pattern.compile("\"code\"\\s*:\\s*(\\d+)").matcher(b);
            boolean notFound = r.statusCode() == 404 || (code.find() && code.group(1).equals("20404"));
            if (notFound) {
                log("nacos heartbeat: instance not found (" + describe(r) + "), re-registering");
                register();
                return;
            }
            if (!ok(r)) {
                log("nacos heartbeat failed: " + describe(r));
                return;
            }
            lightBeat = b.matches("(?s).*\"lightBeatEnabled\"\\s*:\\s*true.*");
        }

        @Override
        void deregister() {
            HttpResponse<String> r = call("DELETE", "/nacos/v1/ns/instance?" + base() + "&ephemeral=true", null, null);
            registered = false;
            log(ok(r) ? "nacos deregistered " + groupedService + " " + ip + ":" + port
                    : "nacos deregister failed: " + describe(r));
        }
    }

    /** Eureka, the way Spring Cloud Netflix's client does it over REST. */
    static final class Eureka extends Registry {
        final String app, idFlag;
        /** eureka.instance.initial-status: Spring Cloud registers with it and never changes it itself. */
        final String status;
        final Map<String, String> metadata;
        final long beatMs;
        volatile long dirty;

        Eureka(HttpClient http, Duration timeout, List<String> servers, String app, String id, String status,
                Map<String, String> metadata, long beatMs) {
            super(http, timeout, servers);
            this.app = app.toUpperCase(Locale.ROOT);
            this.idFlag = id;
            this.status = status;
            this.metadata = metadata;
            this.beatMs = beatMs;
        }

        @Override
        String name() {
            return "eureka";
        }

        @Override
        long beatMillis() {
            return beatMs;
        }

        @Override
        void headers(HttpRequest.Builder b) {
            b.header("Accept", "application/json");
        }

        /** Spring's default id with prefer-ip-address (ip:app:port), known only once the port is bound. */
        String id() {
            return idFlag.isEmpty() ? ip + ":" + app.toLowerCase(Locale.ROOT) + ":" + port : idFlag;
        }

        String path() {
            return "/apps/" + enc(app) + "/" + enc(id());
        }

        @Override
        boolean register() {
            dirty = System.currentTimeMillis();
            String home = "http://" + ip + ":" + port;
            long renewal = Math.max(1, beatMs / 1000);
            String body = "{\"instance\":{"
                    + "\"instanceId\":" + q(id())
                    + ",\"hostName\":" + q(ip)
                    + ",\"app\":" + q(app)
                    + ",\"ipAddr\":" + q(ip)
                    + ",\"status\":" + q(status)
                    + ",\"overriddenStatus\":\"UNKNOWN\""
                    + ",\"port\":{\"$\":" + port + ",\"@enabled\":\"true\"}"
                    + ",\"securePort\":{\"$\":443,\"@enabled\":\"false\"}"
                    + ",\"countryId\":1"
                    + ",\"dataCenterInfo\":{\"@class\":\"com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo\",\"name\":\"MyOwn\"}"
                    + ",\"leaseInfo\":{\"renewalIntervalInSecs\":" + renewal + ",\"durationInSecs\":" + (3 * renewal) + "}"
                    + ",\"metadata\":" + jsonObject(metadata)
                    + ",\"homePageUrl\":" + q(home + "/")
                    + ",\"statusPageUrl\":" + q(home + "/actuator/info")
                    + ",\"healthCheckUrl\":" + q(home + "/actuator/health")
                    + ",\"vipAddress\":" + q(app.toLowerCase(Locale.ROOT))
                    + ",\"secureVipAddress\":" + q(app.toLowerCase(Locale.ROOT))
                    + ",\"isCoordinatingDiscoveryServer\":\"false\""
                    + ",\"lastUpdatedTimestamp\":\"" + dirty + "\""
                    + ",\"lastDirtyTimestamp\":\"" + dirty + "\""
                    + "}}";
            HttpResponse<String> r = call("POST", "/apps/" + enc(app), "application/json", body);
            registered = ok(r);
            log(registered ? "eureka registered " + app + "/" + id() + " status=" + status
                    : "eureka register failed: " + describe(r));
            return registered;
        }

        /**
         * A renewal carries the client's own status, as Eureka's client does;
         * the server does not take a status from it, so a status set from
         * outside (gracefulinit's) stays.
         */
        @Override
        void beat() {
            HttpResponse<String> r = call("PUT", path() + "?status=" + status + "&lastDirtyTimestamp=" + dirty, null, null);
            if (r == null) {
                return;
            }
            if (r.statusCode() == 404) {
                log("eureka heartbeat: instance not found, re-registering");
                register();
            } else if (!ok(r)) {
                log("eureka heartbeat failed: " + describe(r));
            }
        }

        @Override
        void deregister() {
            HttpResponse<String> r = call("DELETE", path(), null, null);
            registered = false;
            log(ok(r) ? "eureka deregistered " + app + "/" + id() : "eureka deregister failed: " + describe(r));
        }
    }

    // ---- encoding helpers -----------------------------------------------

    static final String FORM = "application/x-www-form-urlencoded;charset=UTF-8";

    static String enc(String s) {
        return URLEncoder.encode(s, StandardCharsets.UTF_8).replace("+", "%20");
    }

    static String form(String... kv) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i + 1 < kv.length; i += 2) {
            if (sb.length() > 0) {
                sb.append('&');
            }
            sb.append(enc(kv[i])).append('=').append(enc(kv[i + 1]));
        }
        return sb.toString();
    }

    static String q(String s) {
        StringBuilder sb = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"': sb.append("\\\""); break;
                case '\\': sb.append("\\\\"); break;
                case '\n': sb.append("\\n"); break;
                case '\r': sb.append("\\r"); break;
                case '\t': sb.append("\\t"); break;
                default:
                    if (c < 0x20) {
                        sb.append(String.format("\\u%04x", (int) c));
                    } else {
                        sb.append(c);
                    }
            }
        }
        return sb.append('"').toString();
    }

    static String jsonObject(Map<String, String> m) {
        StringBuilder sb = new StringBuilder("{");
        for (Map.Entry<String, String> e : m.entrySet()) {
            if (sb.length() > 1) {
                sb.append(',');
            }
            sb.append(q(e.getKey())).append(':').append(q(e.getValue()));
        }
        return sb.append('}').toString();
    }
}
