/** mulberry32: a small seeded PRNG for tests, so that a random history can be replayed from its seed. */
export function createRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A seeded generator of integers in [0, n): createRandom's values scaled. */
export function createRandomInt(seed: number): (n: number) => number {
  const random = createRandom(seed);
  return (n) => Math.floor(random() * n);
}
