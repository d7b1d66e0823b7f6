/**
 * Counts turns of the event loop (setImmediate callbacks) while an operation
 * runs: a job done in slices lets many pass, one done in a single go none.
 */
export interface TurnCounter {
  /** Turns counted so far. */
  count(): number;
  /** Stops counting (call before the test ends). */
  stop(): void;
}

export function countTurns(): TurnCounter {
  let turns = 0;
  let counting = true;
  const tick = (): void => {
    turns++;
    if (counting) setImmediate(tick);
  };
  setImmediate(tick);
  return {
    count: () => turns,
    stop: () => {
      counting = false;
    },
  };
}
