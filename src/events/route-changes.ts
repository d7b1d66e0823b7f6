/**
 * Which prefixes started or stopped being offered to the routers between
 * two publishes (pure): the event history's `bgp-announce` and
 * `bgp-withdraw`. Attributes (MED, communities, a drain) are not changes of
 * what is announced; a drain has its own event.
 */
import { formatPrefix } from '../bgp/address.js';
import type { Route } from '../bgp/pack.js';

export interface RouteChanges {
  /** The prefixes offered now, formatted (`192.0.2.1/32`), to pass to the next call. */
  readonly offered: ReadonlySet<string>;
  readonly announced: readonly string[];
  readonly withdrawn: readonly string[];
}

export function diffOfferedRoutes(previous: ReadonlySet<string>, routes: readonly Route[]): RouteChanges {
  const offered = new Set<string>();
  const announced: string[] = [];
  for (const route of routes) {
    const prefix = formatPrefix(route.prefix);
    offered.add(prefix);
    if (!previous.has(prefix)) announced.push(prefix);
  }
  const withdrawn: string[] = [];
  for (const prefix of previous) if (!offered.has(prefix)) withdrawn.push(prefix);
  return { offered, announced, withdrawn };
}
