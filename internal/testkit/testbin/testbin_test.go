package testbin

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gracefulinit/gracefulinit/internal/testkit/repo"
)

func TestStartPID1(t *testing.T) {
	p := Start(t, Options{PID1: true}, "--", "sh", "-c", "echo ppid=$PPID; exit 5")
	if code := p.Wait(30 * time.Second); code != 5 {
		t.Fatalf("exit code %d, want 5", code)
	}
	if got := p.Stdout.String(); got != "ppid=1\n" {
		t.Fatalf("child's parent should be pid 1: PID-1 gracefulinit, got %q", got)
	}
}

func TestSignalPID1(t *testing.T) {
	p := Start(t, Options{PID1: true}, "--", "sleep", "100")
	p.Signal(syscall.SIGTERM)
	if code := p.Wait(30 * time.Second); code != 128+int(syscall.SIGTERM) {
		t.Fatalf("exit code %d, want 143", code)
	}
}

func TestLogs(t *testing.T) {
	p := &Proc{Stderr: &SafeBuffer{}}
	fmt.Fprint(p.Stderr, `{"level":"INFO","msg":"starting","logger":"gracefulinit","took":1500000000,"n":3,"ok":true}
Exception in thread "main" java.lang.Error
{"msg":"the app's own JSON","logger":"app"}
{"level":"INFO","msg":"shutdown summary","logger":"gracefulinit","total":"4.002s","drain":"-"}
`)
	logs := p.Logs()
	if len(logs) != 2 || logs[0].Str("msg") != "starting" || logs[1].Str("msg") != "shutdown summary" {
		t.Fatalf("Logs() = %v, want gracefulinit's two records", logs)
	}
	l := logs[0]
	tests := []struct {
		name      string
		got, want any
	}{
		{"Str of a string", l.Str("level"), "INFO"},
		{"Str of a number", l.Str("n"), "3"},
		{"Str of a bool", l.Str("ok"), "true"},
		{"Str absent", l.Str("nope"), ""},
		{"Num", l.Num("n"), 3.0},
		{"Num absent", l.Num("nope"), 0.0},
		{"Dur of nanoseconds", l.Dur("took"), 1500 * time.Millisecond},
		{"Dur of text", logs[1].Dur("total"), 4002 * time.Millisecond},
		{"Dur of -", logs[1].Dur("drain"), time.Duration(0)},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
}

func TestParseSummary(t *testing.T) {
	full := func() LogRecord {
		return LogRecord{"signal": "SIGTERM", "offline": "ok", "offline_took": "12ms", "drain_end": "quiet",
			"drain": "1.5s", "stop_signal": "SIGTERM", "stop_sent_at": "1.5s", "child_exit_at": "-",
			"killed": false, "child_exit_code": 143.0, "exit_code": 0.0, "total": "1.6s", "deadline": "30s"}
	}
	s, err := ParseSummary(full())
	if err != nil {
		t.Fatal(err)
	}
	want := Summary{Signal: "SIGTERM", Offline: "ok", DrainEnd: "quiet", Drain: 1500 * time.Millisecond,
		StopSignal: "SIGTERM", StopSentAt: 1500 * time.Millisecond, ChildExitAt: -1, ChildCode: 143,
		Total: 1600 * time.Millisecond, Deadline: 30 * time.Second}
	s.Record = nil
	if !reflect.DeepEqual(s, want) {
		t.Errorf("ParseSummary = %+v, want %+v", s, want)
	}

	tests := []struct {
		name  string
		edit  func(LogRecord)
		wants []string // in the error
	}{
		{"a field missing", func(l LogRecord) { delete(l, "deadline") }, []string{`lacks "deadline"`}},
		{"not a duration", func(l LogRecord) { l["total"] = "soon" }, []string{"total=\"soon\": not a duration"}},
		{"not a number", func(l LogRecord) { l["exit_code"] = "0" }, []string{"exit_code=0: not a number"}},
		{"not a boolean and missing", func(l LogRecord) { l["killed"] = "no"; delete(l, "signal") },
			[]string{"killed=no: not a boolean", `lacks "signal"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := full()
			tt.edit(l)
			_, err := ParseSummary(l)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// The Makefile and the Dockerfile link gracefulinit with the same entry
// stub as these builds: a renamed symbol must not leave one of them
// silently without it.
func TestEntryFlagEverywhere(t *testing.T) {
	root, err := repo.Root()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"Makefile", "Dockerfile"} {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), EntryLDFlags) {
			t.Errorf("%s does not link with %q", f, EntryLDFlags)
		}
	}
}

// TestSharedRunBuild: with a run directory, concurrent builds of one
// package (other test processes: each opens the lock file, as goroutines
// here do) wait for one build and get the same binary, which RemoveBuilt
// leaves to the run (inRunDir); the entry flag is part of the key.
func TestSharedRunBuild(t *testing.T) {
	run := t.TempDir()
	t.Setenv(RunDirEnv, run)
	const pkg = "./testdata/pid1/pid1helper"
	paths := make([]string, 3)
	errs := make([]error, 3)
	done := make(chan int)
	for i := range paths {
		go func() { paths[i], errs[i] = goBuild(pkg, true, ""); done <- i }()
	}
	for range paths {
		<-done
	}
	for i := range paths {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if paths[i] != paths[0] {
			t.Fatalf("builds %d and 0 differ: %s, %s", i, paths[i], paths[0])
		}
	}
	if !strings.HasPrefix(paths[0], run+string(filepath.Separator)) {
		t.Fatalf("built %s, outside the run dir %s", paths[0], run)
	}
	fi, err := os.Stat(paths[0])
	if err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf("%s: not an executable: %v", paths[0], err)
	}
	dirs, _ := filepath.Glob(filepath.Join(run, "*"))
	if len(dirs) != 2 { // KEY and KEY.lock
		t.Fatalf("run dir holds %v, want one build and its lock", dirs)
	}
	plain, err := goBuild(pkg, false, "")
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(plain) == filepath.Dir(paths[0]) {
		t.Fatal("the entry flag does not change the key")
	}
	if !inRunDir(paths[0]) || inRunDir(filepath.Join(os.TempDir(), "gracefulinit-bin-1", "gracefulinit")) {
		t.Fatal("inRunDir does not tell the run's copies from a process's own: RemoveBuilt would remove the wrong ones")
	}
}
