// Preloaded into a Herald process by a bench (NODE_OPTIONS="--import <this file>") to profile a
// window of its CPU: the first SIGUSR2 starts V8's sampling profiler, the next one stops it and
// writes the profile to $HERALD_BENCH_CPU_PROFILE_DIR/profile-<n>.cpuprofile (Chrome DevTools'
// format), and so on. Node refuses --cpu-prof in NODE_OPTIONS, and that one covers the whole
// process; a window shows what one part of a bench costs.
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector";
import { join } from "node:path";

const dir = process.env.HERALD_BENCH_CPU_PROFILE_DIR;
if (dir) {
  const session = new Session();
  session.connect();
  let profiling = false;
  let written = 0;
  process.on("SIGUSR2", () => {
    if (!profiling) {
      profiling = true;
      session.post("Profiler.enable", () =>
        session.post("Profiler.setSamplingInterval", { interval: 250 }, () =>
          session.post("Profiler.start"),
        ),
      );
      return;
    }
    profiling = false;
    session.post("Profiler.stop", (error, result) => {
      const file = join(dir, `profile-${++written}.cpuprofile`);
      writeFileSync(file, error ? "{}" : JSON.stringify(result.profile));
    });
  });
}
