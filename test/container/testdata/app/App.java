import com.sun.net.httpserver.HttpServer;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.CountDownLatch;

/**
 * A JDK-only service for the container test. Every line it prints carries
 * the wall-clock time (t=epoch millis) so the test can measure when SIGTERM
 * reached the JVM (the shutdown hook's line) against when it ran podman stop.
 *
 * Flags:
 *   --port=N         serve "ok" on 127.0.0.1:N (default 8080)
 *   --ignore-term    install a SIGTERM handler that only logs: the JVM then
 *                    never runs its shutdown hooks on TERM (a hung app)
 *   --orphans=N      once started, run "sh -c 'sleep 1 & ... & exit 0'": the
 *                    shell is this JVM's child and is waited for; its N sleeps
 *                    are orphaned, re-parented to PID 1, and become zombies
 *                    unless PID 1 reaps them
 *   --qos-port=N     a stand-in for Dubbo's QoS port on 127.0.0.1:N:
 *                    /offline and /online answer "OK" and log "qos offline"
 *                    or "qos online"; /hang never answers
 *   --qos-online-after-ms=N  /online answers 503 until N ms after start (a
 *                    registry that is not ready for the app yet)
 */
public class App {
    static void log(String msg) {
        System.out.println("app: " + msg + " t=" + System.currentTimeMillis());
        System.out.flush();
    }

    public static void main(String[] args) throws Exception {
        int port = 8080;
        int orphans = 0;
        boolean ignoreTerm = false;
        int qosPort = 0;
        long qosOnlineAfter = 0;
        for (String a : args) {
            if (a.startsWith("--port=")) {
                port = Integer.parseInt(a.substring("--port=".length()));
            } else if (a.startsWith("--orphans=")) {
                orphans = Integer.parseInt(a.substring("--orphans=".length()));
            } else if (a.startsWith("--qos-online-after-ms=")) {
                qosOnlineAfter = Long.parseLong(a.substring("--qos-online-after-ms=".length()));
            } else if (a.startsWith("--qos-port=")) {
                qosPort = Integer.parseInt(a.substring("--qos-port=".length()));
            } else if (a.equals("--ignore-term")) {
                ignoreTerm = true;
            } else {
                System.err.println("app: unknown argument " + a);
                System.exit(2);
            }
        }

        Runtime.getRuntime().addShutdownHook(new Thread(() -> log("shutdown hook ran")));
        if (ignoreTerm) {
            // Replacing the JVM's own TERM handler is what a wedged app looks
            // like from outside: TERM arrives and nothing stops.
            sun.misc.Signal.handle(new sun.misc.Signal("TERM"), s -> log("ignoring SIGTERM"));
        }

        HttpServer server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), port), 50);
        server.createContext("/", ex -> {
            byte[] body = "ok\n".getBytes(StandardCharsets.UTF_8);
            ex.sendResponseHeaders(200, body.length);
            try (OutputStream out = ex.getResponseBody()) {
                out.write(body);
            }
        });
        server.start();
        if (qosPort > 0) {
            startQoS(qosPort, System.currentTimeMillis() + qosOnlineAfter);
        }

        if (orphans > 0) {
            StringBuilder script = new StringBuilder();
            for (int i = 0; i < orphans; i++) {
                script.append("sleep 1 & ");
            }
            script.append("exit 0");
            Process sh = new ProcessBuilder("/bin/sh", "-c", script.toString()).inheritIO().start();
            log("spawned " + orphans + " orphans, shell exited " + sh.waitFor());
        }

        log("ready port=" + port);
        new CountDownLatch(1).await();
    }

    static void startQoS(int port, long onlineFrom) throws Exception {
        HttpServer qos = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), port), 50);
        qos.setExecutor(java.util.concurrent.Executors.newCachedThreadPool());
        for (String cmd : new String[] {"offline", "online"}) {
            qos.createContext("/" + cmd, ex -> {
                boolean early = cmd.equals("online") && System.currentTimeMillis() < onlineFrom;
                log("qos " + cmd + " " + ex.getRequestMethod() + (early ? " refused" : ""));
                byte[] body = (early ? "not yet\n" : "OK\n").getBytes(StandardCharsets.UTF_8);
                ex.sendResponseHeaders(early ? 503 : 200, body.length);
                try (OutputStream out = ex.getResponseBody()) {
                    out.write(body);
                }
            });
        }
        qos.createContext("/hang", ex -> {
            log("qos hang");
            try {
                new CountDownLatch(1).await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
        qos.start();
    }
}
