/**
 * The speaker as a director runs it, for the namespace test: a process of its
 * own (started with `ip netns exec`), configured from GlobalConfig and
 * ServiceConfig values, with the router ID derived from the host's addresses.
 * Commands arrive as JSON lines on stdin; answers go out as JSON lines.
 *
 *   {"cmd":"health","service":"web","healthy":false}
 *   {"cmd":"status"}                  -> {"status":[...]}
 *   {"cmd":"shutdown","reason":"..."} -> {"shutdown":true}, then exit
 *
 * Signals do the same for callers without a stdin (the lab): SIGUSR1 makes
 * every service unhealthy, SIGUSR2 healthy again, SIGTERM shuts down as the
 * daemon will (withdraw, Cease with a message, exit 0).
 */
import { networkInterfaces } from 'node:os';
import { createInterface } from 'node:readline';
import { decideRoutes, speakerOptionsFromConfig } from '../../src/bgp/announcements.js';
import { BgpSpeaker } from '../../src/bgp/speaker.js';
import type { GlobalConfig, ServiceConfig } from '../../src/config/types.js';
import { createSystemClock } from '../../src/runtime/clock.js';
import { createSilentLogger } from '../../src/runtime/logger.js';

interface Input {
  readonly global: GlobalConfig;
  readonly services: ServiceConfig[];
}

const input = JSON.parse(process.argv[2] ?? '{}') as Input;
const hostIpv4Addresses = Object.values(networkInterfaces())
  .flat()
  .filter((a) => a?.family === 'IPv4')
  .map((a) => a?.address ?? '');
const speaker = new BgpSpeaker(
  speakerOptionsFromConfig(input.global, input.services, { clock: createSystemClock(), logger: createSilentLogger(), hostIpv4Addresses }),
);
const health = new Map<string, boolean>(input.services.map((s) => [s.name, true]));
const announce = (): void => speaker.setAnnouncements(decideRoutes(input.global, input.services, (s) => health.get(s.name) ?? false));
const say = (value: unknown): void => void process.stdout.write(JSON.stringify(value) + '\n');

const shutdown = async (reason: string): Promise<never> => {
  await speaker.shutdown(reason);
  say({ shutdown: true });
  process.exit(0);
};
const setAll = (healthy: boolean): void => {
  for (const s of input.services) health.set(s.name, healthy);
  announce();
  say({ healthy });
};
process.on('SIGTERM', () => void shutdown('SIGTERM: director shutting down'));
process.on('SIGUSR1', () => setAll(false));
process.on('SIGUSR2', () => setAll(true));

announce();
await speaker.start();
say({ started: true });

for await (const line of createInterface({ input: process.stdin })) {
  const cmd = JSON.parse(line) as { cmd: string; service?: string; healthy?: boolean; reason?: string };
  if (cmd.cmd === 'health' && cmd.service) {
    health.set(cmd.service, cmd.healthy ?? false);
    announce();
    say({ ok: true });
  } else if (cmd.cmd === 'status') {
    say({ status: speaker.status() });
  } else if (cmd.cmd === 'shutdown') {
    await shutdown(cmd.reason ?? 'shutdown');
  }
}
// stdin closed (or absent): keep serving until a signal says otherwise.
