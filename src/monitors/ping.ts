/**
 * Ping: ICMP or ICMPv6 echo through the shared batch pinger. Each check is
 * `count` echoes spread over the interval; it passes when any is answered
 * within `timeout`. No process per check: one fping serves every server.
 */
import type { PingConfig } from '../config/types.js';
import type { Timer } from '../runtime/clock.js';
import { createReportingHealth } from './health.js';
import { createFpingPinger, type PingSample } from './pinger.js';
import type { Monitor, MonitorDeps, MonitorTarget } from './types.js';

/** fping's settings for a ping config: one echo every interval/count, each with the timeout (at most the period). */
export function pingSettings(config: Pick<PingConfig, 'intervalMs' | 'timeoutMs' | 'count'>): { periodMs: number; timeoutMs: number } {
  const periodMs = Math.max(10, Math.round(config.intervalMs / Math.max(1, config.count)));
  return { periodMs, timeoutMs: Math.max(1, Math.min(config.timeoutMs, periodMs)) };
}

export function createPingMonitor(config: PingConfig, target: MonitorTarget, deps: MonitorDeps): Monitor {
  const { clock, logger } = deps;
  const kind = config.kind;
  const health = createReportingHealth(kind, config, deps);
  const ownPinger = deps.pinger ? undefined : createFpingPinger({ clock, logger });
  const pinger = deps.pinger ?? ownPinger!;
  const count = Math.max(1, config.count);
  let samples: PingSample[] = [];
  let unsubscribe: (() => void) | undefined;
  let startTimer: Timer | undefined;
  let started = false;
  let stopped = false;

  const onSample = (sample: PingSample): void => {
    samples.push(sample);
    if (samples.length < count) return;
    const batch = samples;
    samples = [];
    const answered = batch.find((s) => s.ok);
    const outcome = answered
      ? { ok: true, reason: `${target.ip}: ${answered.reason}` }
      : { ok: false, reason: `${target.ip}: ${batch.length} echo request(s) unanswered: ${batch[batch.length - 1]?.reason ?? ''}` };
    deps.onResult?.({ kind, ...outcome, durationMs: answered?.rttMs ?? config.timeoutMs });
    health.record(outcome.ok, outcome.reason);
  };

  return {
    kind,
    start(startOptions) {
      if (started) return;
      started = true;
      if (startOptions?.assumeUp) health.presumeUp();
      const subscribe = (): void => {
        startTimer = undefined;
        if (!stopped) unsubscribe = pinger.subscribe(target.ip, pingSettings(config), onSample);
      };
      const delayMs = Math.max(0, startOptions?.delayMs ?? 0);
      if (delayMs > 0) startTimer = clock.setTimeout(subscribe, delayMs);
      else subscribe();
    },
    async stop() {
      stopped = true;
      startTimer?.cancel();
      startTimer = undefined;
      unsubscribe?.();
      unsubscribe = undefined;
      await ownPinger?.stop();
    },
    state: () => health.state(),
  };
}
