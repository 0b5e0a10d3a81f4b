// TestApp is the JVM child of gracefulinit's integration tests. It models the
// parts of a Java service the supervisor interacts with (signals, shutdown
// hooks, readiness, HTTP traffic, grandchildren) and reports what happened on
// stdout and, with --events, in a file whose lines tests parse for ordering.
//
// Flags (all optional):
//   --port N            HTTP port; 0 (default) means no HTTP server
//   --bind ADDR         listen address (default 127.0.0.1)
//   --start-delay-ms N  not ready for N ms: /health answers 503, READY is not printed
//   --late-bind         do not even bind the port until the start delay passed
//   --hook-ms N         the shutdown hook sleeps N ms (default 0)
//   --ignore-term       a SIGTERM handler that only records the signal
//   --trap SIG[,SIG]    record these signals (e.g. HUP,USR1) and keep running
//   --spawn N           start N grandchildren `sleep 1000` (stdout: CHILD <pid>)
//   --events FILE       append "<epoch-ms> <event>[ <detail>]" lines
//   --exit N            System.exit(N) right after becoming ready (hooks run)
//   --exit-delay-ms N   with --exit: wait N ms after ready first
//
// HTTP: /  -> "ok <bind>:<port>" (header X-Request-Count), /count -> requests
// to / so far, /slow?ms=N -> "slow N" after N ms, /health -> 503 until ready
// then 200.
//
// Events: start, listen, ready, spawn <pid>, signal <NAME>, term, hook-start,
// hook-done, request <path>, request-done <path>, exit <code>.
// Stdout: LISTEN <addr>:<port>, CHILD <pid>, READY, TERM, SIGNAL <NAME>,
// HOOK START, HOOK DONE, EXIT <code>.
//
// SIGTERM keeps the JVM's default behaviour (shutdown hooks, then exit 143):
// the TERM handler records the event and then calls the JVM's own handler.

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicLong;
import sun.misc.Signal;
import sun.misc.SignalHandler;

public final class TestApp {
    private static OutputStream events;
    private static volatile boolean ready;
    private static final AtomicLong requests = new AtomicLong();
    private static final PrintStream out = System.out;

    public static void main(String[] args) throws Exception {
        int port = 0;
        String bind = "127.0.0.1";
        long startDelay = 0, hookMs = 0, exitDelay = 0;
        boolean lateBind = false, ignoreTerm = false;
        int spawn = 0;
        Integer exitCode = null;
        List<String> traps = new ArrayList<>();
        String eventsFile = null;
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            switch (a) {
                case "--port": port = Integer.parseInt(value(args, ++i, a)); break;
                case "--bind": bind = value(args, ++i, a); break;
                case "--start-delay-ms": startDelay = Long.parseLong(value(args, ++i, a)); break;
                case "--late-bind": lateBind = true; break;
                case "--hook-ms": hookMs = Long.parseLong(value(args, ++i, a)); break;
                case "--ignore-term": ignoreTerm = true; break;
                case "--trap":
                    for (String s : value(args, ++i, a).split(",")) {
                        if (!s.isBlank()) traps.add(s.trim().toUpperCase().replaceFirst("^SIG", ""));
                    }
                    break;
                case "--spawn": spawn = Integer.parseInt(value(args, ++i, a)); break;
                case "--events": eventsFile = value(args, ++i, a); break;
                case "--exit": exitCode = Integer.parseInt(value(args, ++i, a)); break;
                case "--exit-delay-ms": exitDelay = Long.parseLong(value(args, ++i, a)); break;
                default:
                    System.err.println("TestApp: unknown flag " + a);
                    System.exit(2);
            }
        }
        if (eventsFile != null) {
            events = new FileOutputStream(eventsFile, true);
        }
        final long t0 = System.currentTimeMillis();
        event("start", String.valueOf(ProcessHandle.current().pid()));

        installSignals(ignoreTerm, traps);
        final long hook = hookMs;
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            event("hook-start", null);
            say("HOOK START");
            if (hook > 0) {
                try {
                    Thread.sleep(hook);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
            event("hook-done", null);
            say("HOOK DONE");
        }, "testapp-hook"));

        for (int i = 0; i < spawn; i++) {
            ProcessBuilder pb = new ProcessBuilder("sleep", "1000");
            pb.redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")));
            pb.redirectOutput(ProcessBuilder.Redirect.DISCARD);
            pb.redirectError(ProcessBuilder.Redirect.DISCARD);
            long pid = pb.start().pid();
            event("spawn", String.valueOf(pid));
            say("CHILD " + pid);
        }

        if (port > 0 && !lateBind) {
            listen(bind, port);
        }
        long wait = t0 + startDelay - System.currentTimeMillis();
        if (wait > 0) {
            Thread.sleep(wait);
        }
        if (port > 0 && lateBind) {
            listen(bind, port);
        }
        ready = true;
        event("ready", null);
        say("READY");

        if (exitCode != null) {
            if (exitDelay > 0) {
                Thread.sleep(exitDelay);
            }
            event("exit", String.valueOf(exitCode));
            say("EXIT " + exitCode);
            System.exit(exitCode);
        }
        // Nothing else keeps a JVM without an HTTP server alive.
        new CountDownLatch(1).await();
    }

    private static String value(String[] args, int i, String flag) {
        if (i >= args.length) {
            System.err.println("TestApp: " + flag + " needs a value");
            System.exit(2);
        }
        return args[i];
    }

    private static void installSignals(boolean ignoreTerm, List<String> traps) {
        final Signal term = new Signal("TERM");
        final SignalHandler[] prev = new SignalHandler[1];
        prev[0] = Signal.handle(term, sig -> {
            event("term", null);
            say(ignoreTerm ? "TERM ignored" : "TERM");
            if (ignoreTerm) {
                return;
            }
            SignalHandler p = prev[0];
            if (p == SignalHandler.SIG_DFL || p == SignalHandler.SIG_IGN || p == null) {
                // No JVM handler to delegate to (e.g. -Xrs): behave like it.
                System.exit(143);
            }
            p.handle(sig);
        });
        for (String name : traps) {
            Signal.handle(new Signal(name), sig -> {
                event("signal", sig.getName());
                say("SIGNAL " + sig.getName());
            });
        }
    }

    private static void listen(String bind, int port) throws IOException {
        HttpServer server = HttpServer.create(new InetSocketAddress(bind, port), 256);
        // Bound: a TCP probe connects from here on, before "listen" below.
        event("bind", bind + ":" + port);
        String self = "ok " + bind + ":" + port;
        server.createContext("/", ex -> handle(ex, () -> {
            long n = requests.incrementAndGet();
            ex.getResponseHeaders().set("X-Request-Count", String.valueOf(n));
            reply(ex, 200, self);
        }));
        server.createContext("/count", ex -> handle(ex, () -> reply(ex, 200, String.valueOf(requests.get()))));
        server.createContext("/health", ex -> handle(ex, () -> {
            if (ready) {
                reply(ex, 200, "ok");
            } else {
                reply(ex, 503, "starting");
            }
        }));
        server.createContext("/slow", ex -> handle(ex, () -> {
            long ms = 0;
            String q = ex.getRequestURI().getRawQuery();
            if (q != null) {
                for (String kv : q.split("&")) {
                    if (kv.startsWith("ms=")) {
                        ms = Long.parseLong(kv.substring(3));
                    }
                }
            }
            try {
                Thread.sleep(ms);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            reply(ex, 200, "slow " + ms);
        }));
        server.setExecutor(Executors.newCachedThreadPool());
        server.start();
        event("listen", bind + ":" + port);
        say("LISTEN " + bind + ":" + port);
    }

    private interface IORunnable {
        void run() throws IOException;
    }

    private static void handle(HttpExchange ex, IORunnable body) throws IOException {
        String path = ex.getRequestURI().getPath();
        event("request", path);
        try {
            body.run();
        } catch (RuntimeException e) {
            reply(ex, 500, e.toString());
        } finally {
            ex.close();
            event("request-done", path);
        }
    }

    private static void reply(HttpExchange ex, int code, String body) throws IOException {
        byte[] b = (body + "\n").getBytes(StandardCharsets.UTF_8);
        ex.getResponseHeaders().set("Content-Type", "text/plain; charset=utf-8");
        ex.sendResponseHeaders(code, b.length);
        ex.getResponseBody().write(b);
    }

    private static synchronized void say(String line) {
        out.println(line);
        out.flush();
    }

    /** Appends one line; O_APPEND keeps lines whole even if tests share the file. */
    private static synchronized void event(String name, String detail) {
        if (events == null) {
            return;
        }
        String line = System.currentTimeMillis() + " " + name + (detail == null ? "" : " " + detail) + "\n";
        try {
            events.write(line.getBytes(StandardCharsets.UTF_8));
            events.flush();
        } catch (IOException e) {
            System.err.println("TestApp: events: " + e);
        }
    }
}
