/**
 * ProxyFetch: GET of each configured URL sent to the real server's address
 * and the service port, with the URL's host as `Host` (and as TLS SNI); no
 * redirect is followed. Success on 2xx, or on 301/302/303 when http_status
 * asks for a redirect; optionally the body must contain a string or match a
 * regular expression; TLS certificates are checked when verify-tls is on.
 */
import { readFileSync } from 'node:fs';
import type { ProxyFetchConfig } from '../config/types.js';
import type { Clock } from '../runtime/clock.js';
import { errorMessage } from '../runtime/errors.js';
import { formatSeconds, type CheckSignal } from './deadline.js';
import { createFetchSecureContext, prepareFetch, runFetch, type PreparedFetch, type Verdict } from './http-check.js';
import { withDataPath } from './data-path.js';
import { createPeriodicMonitor, type PeriodicCheck } from './periodic.js';
import type { FetchOptions } from './proxyfetch-rules.js';
import type { CheckOutcome, Monitor, MonitorDeps, MonitorTarget, UrlResult } from './types.js';

export { BODY_CAP_BYTES, bodyProblem, expectsRedirect, statusPasses, type FetchOptions } from './proxyfetch-rules.js';

/** One GET of `url` against the target; resolves with the verdict, never rejects. */
export function fetchUrl(url: URL, target: MonitorTarget, options: FetchOptions, signal: CheckSignal): Promise<{ ok: boolean; reason: string }> {
  return runFetch(prepareFetch(url, options), target, signal);
}

/**
 * Compiles the config's URLs and regular expression. Throws on bad values;
 * the config parser should have rejected them already.
 */
function compile(config: ProxyFetchConfig): { urls: URL[]; expectBodyRegex: RegExp | undefined } {
  const urls = config.urls.map((u) => {
    const url = new URL(u);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`unsupported URL scheme in ${u}`);
    return url;
  });
  if (urls.length === 0) throw new Error('no URL to fetch');
  // Multiline: ^ and $ match at line ends, as operators reading a body line by line expect.
  const expectBodyRegex = config.expectBodyRegex === undefined ? undefined : new RegExp(config.expectBodyRegex, 'm');
  return { urls, expectBodyRegex };
}

export function createProxyFetchMonitor(config: ProxyFetchConfig, target: MonitorTarget, deps: MonitorDeps): Monitor {
  return prepareProxyFetchMonitor(config)(target, deps);
}

/**
 * ProxyFetch for every server of one config: the URLs and regular
 * expression are compiled once here, and the request bytes and TLS context
 * once at the first check of any of them, rather than per server (a URL
 * with its URLContext, a TLS context and the prepared requests for each of
 * 10,000 servers).
 */
export function prepareProxyFetchMonitor(config: ProxyFetchConfig): (target: MonitorTarget, deps: MonitorDeps) => Monitor {
  const plan = new ProxyFetchPlan(config);
  return (target, deps) => createPeriodicMonitor(config.kind, config, withDataPath(target, (t) => new ProxyFetchCheck(plan, t, deps), deps.arpWatch), deps);
}

interface FetchTarget {
  readonly href: string;
  readonly fetch: PreparedFetch;
}

/** What the checks of one config share. */
class ProxyFetchPlan {
  readonly maxFailures: number;
  private readonly compiled: ReturnType<typeof compile> | undefined;
  private readonly problem: string | undefined;
  /** Request bytes and TLS context per URL, built at the first check (once the ca-file is read). */
  private targets: readonly FetchTarget[] | undefined = undefined;
  /** Each target alone: a round of one URL picks its list without allocating one. */
  private singles: readonly (readonly FetchTarget[])[] = [];

  constructor(readonly config: ProxyFetchConfig) {
    this.maxFailures = config.checkAll ? config.maxFailures : 0;
    // A bad value makes every check fail with the reason instead of throwing into the daemon.
    try {
      this.compiled = compile(config);
    } catch (error) {
      this.problem = `invalid ProxyFetch configuration: ${errorMessage(error)}`;
    }
  }

  /**
   * The URLs of a round (all of them with check_all, else one picked with
   * `random`), or why there is none. A ca-file that cannot be read is tried
   * again at the next check.
   */
  pick(random: () => number): readonly FetchTarget[] | string {
    if (!this.compiled) return this.problem ?? 'invalid configuration';
    let targets = this.targets;
    if (targets === undefined) {
      let ca: Buffer | undefined;
      if (this.config.caFile !== undefined) {
        try {
          ca = readFileSync(this.config.caFile);
        } catch (error) {
          return `cannot read ca-file: ${errorMessage(error)}`;
        }
      }
      targets = this.targets = prepareTargets(this.compiled, this.config, ca);
      this.singles = targets.map((t) => [t]);
    }
    if (this.config.checkAll) return targets;
    return this.singles[Math.floor(random() * targets.length)] ?? this.singles[0]!;
  }
}

/** One server's check: a class, so that a server costs fields rather than closures over a context. */
class ProxyFetchCheck implements PeriodicCheck {
  private readonly random: () => number;
  /** The URLs of the round in flight, for the deadline's reason. */
  private picked: readonly FetchTarget[] = [];

  constructor(
    private readonly plan: ProxyFetchPlan,
    private readonly target: MonitorTarget,
    private readonly deps: MonitorDeps,
  ) {
    this.random = deps.random ?? Math.random;
  }

  timeoutReason(message: string): string {
    return this.picked.map((t) => `Fetch failed (${t.href}): ${message}`).join('; ');
  }

  /**
   * Not an async function: at 1,000 checks a second each async frame (and
   * its awaits' promises) is garbage, and in a busy thread garbage that
   * outlives two scavenges is promoted. One URL (the usual round) costs one
   * `then` on the fetch's promise.
   */
  run(signal: CheckSignal, startMs: number): Promise<CheckOutcome> {
    const picked = this.plan.pick(this.random);
    if (typeof picked === 'string') return Promise.resolve({ ok: false, reason: picked });
    this.picked = picked;
    const { clock } = this.deps;
    const { maxFailures } = this.plan;
    if (picked.length === 1) {
      const { href, fetch } = picked[0]!;
      return runFetch(fetch, this.target, signal).then((verdict) => summariseOne(href, verdict, clock.now() - startMs, maxFailures));
    }
    return Promise.all(picked.map((t) => timedFetch(clock, startMs, t, this.target, signal))).then((results) => summarise(results, maxFailures));
  }
}

/** Every URL prepared for its checks; the https ones share one TLS context. */
function prepareTargets(compiled: NonNullable<ReturnType<typeof compile>>, config: ProxyFetchConfig, ca: Buffer | undefined): FetchTarget[] {
  const options: FetchOptions = {
    httpStatus: config.httpStatus,
    expectBody: config.expectBody,
    expectBodyRegex: compiled.expectBodyRegex,
    verifyTls: config.verifyTls,
    ca,
  };
  const secureContext = compiled.urls.some((url) => url.protocol === 'https:') ? createFetchSecureContext(options) : undefined;
  return compiled.urls.map((url) => ({ href: url.href, fetch: prepareFetch(url, options, secureContext) }));
}

/** One URL's fetch, timed from the check's start (the URLs of a round all start then). */
async function timedFetch(clock: Clock, startMs: number, fetch: FetchTarget, target: MonitorTarget, signal: CheckSignal): Promise<UrlResult> {
  const { ok, reason } = await runFetch(fetch.fetch, target, signal);
  return { url: fetch.href, ok, reason, durationMs: clock.now() - startMs };
}

/** summarise() of a round of one URL, without its arrays. */
function summariseOne(url: string, verdict: Verdict, durationMs: number, maxFailures: number): CheckOutcome {
  const urls: UrlResult[] = [{ url, ok: verdict.ok, reason: verdict.reason, durationMs }];
  if (verdict.ok || maxFailures >= 1) return { ok: true, reason: `Fetch successful (${url}), ${formatSeconds(durationMs)}`, urls, durationMs };
  return { ok: false, reason: `Fetch failed (${url}): ${verdict.reason}`, urls, durationMs };
}

/** A round passes when at most maxFailures URLs failed (PyBal's check_all/max_failures). */
export function summarise(results: readonly UrlResult[], maxFailures: number): CheckOutcome {
  // URLs are timed from the check's start, so the slowest one is the round's duration.
  let durationMs = 0;
  for (const r of results) durationMs = Math.max(durationMs, r.durationMs);
  const failures = results.filter((r) => !r.ok);
  if (failures.length <= maxFailures) {
    const reason = results.map((r) => `Fetch successful (${r.url}), ${formatSeconds(r.durationMs)}`).join('; ');
    return { ok: true, reason, urls: results, durationMs };
  }
  return { ok: false, reason: failures.map((r) => `Fetch failed (${r.url}): ${r.reason}`).join('; '), urls: results, durationMs };
}
