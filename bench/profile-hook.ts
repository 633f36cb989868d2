/**
 * Preloaded into a server process by `bench --profile-server DIR`
 * (NODE_OPTIONS=--import this file; Node refuses --cpu-prof there): each
 * SIGUSR2 starts the V8 CPU profiler, the next one stops it and writes
 * DIR/server-PID-N.cpuprofile, so a profile covers exactly a benchmark's
 * measured window. bench/profile-summary.ts reads it.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';

const dir = process.env.TASKGATE_BENCH_PROFILE_DIR;
if (dir) {
  const session = new Session();
  session.connect();
  let running = false;
  let n = 0;
  process.on('SIGUSR2', () => {
    if (!running) {
      running = true;
      // 100 µs between samples (V8's default is 1 ms at most on Linux).
      session.post('Profiler.enable', () => session.post('Profiler.setSamplingInterval', { interval: 100 }, () => session.post('Profiler.start')));
      return;
    }
    running = false;
    session.post('Profiler.stop', (err, result) => {
      if (err) {
        process.stderr.write(`profile-hook: ${err.message}\n`);
        return;
      }
      const file = join(dir, `server-${process.pid}-${++n}.cpuprofile`);
      writeFileSync(file, JSON.stringify(result.profile));
      process.stderr.write(`profile-hook: wrote ${file}\n`);
    });
  });
}
