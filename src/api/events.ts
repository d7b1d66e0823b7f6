/**
 * `GET /events`: the event history as JSON, oldest first.
 *
 *   /events                 the latest 1000 (or fewer: what is kept)
 *   /events?since=41        those after seq 41 (the first `limit` of them)
 *   /events?limit=10        the latest 10
 *
 * The answer says which sequence numbers are kept (`oldestSeq`..`latestSeq`),
 * so that a reader that polls with `since` sees when it fell behind.
 */
import type { EventHistory } from '../events/history.js';
import { jsonResponse, type ApiResponse } from './response.js';

/** The most events one answer carries. */
export const MAX_EVENTS_PER_ANSWER = 10_000;
/** Without `limit`. */
export const DEFAULT_EVENTS_PER_ANSWER = 1000;

export interface EventsAnswer {
  readonly latestSeq: number;
  readonly oldestSeq: number;
  readonly capacity: number;
  /** Oldest first. */
  readonly events: readonly unknown[];
}

/** A non-negative integer query parameter; undefined when absent, an error message when malformed. */
export function readCount(query: URLSearchParams, name: string, min: number, max: number): number | undefined | { readonly error: string } {
  const text = query.get(name);
  if (text === null) return undefined;
  const value = /^\d{1,15}$/.test(text) ? Number(text) : Number.NaN;
  if (!(value >= min && value <= max)) return { error: `${name} must be an integer between ${min} and ${max}, got '${text.slice(0, 40)}'` };
  return value;
}

export function renderEvents(history: EventHistory, query: URLSearchParams): ApiResponse {
  const since = readCount(query, 'since', 0, Number.MAX_SAFE_INTEGER);
  const limit = readCount(query, 'limit', 1, MAX_EVENTS_PER_ANSWER);
  for (const value of [since, limit]) if (typeof value === 'object') return jsonResponse(400, value);
  const count = (limit as number | undefined) ?? DEFAULT_EVENTS_PER_ANSWER;
  const events = since === undefined ? history.latest(count).reverse() : history.since(since as number, count);
  const answer: EventsAnswer = { latestSeq: history.latestSeq, oldestSeq: history.oldestSeq, capacity: history.capacity, events };
  return jsonResponse(200, answer);
}
