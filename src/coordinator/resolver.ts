/**
 * The production Resolve: the system resolver (getaddrinfo, so /etc/hosts
 * first, as PyBal's Twisted resolver chain), restricted to the service's
 * address family. An IP literal resolves to itself without a lookup.
 */
import net from 'node:net';
import type { AddressFamily } from '../config/types.js';
import type { Resolve } from './types.js';

/** Rejects with the signal's reason when it aborts; the lookup itself cannot be cancelled. */
function abortable<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error as Error);
      },
    );
  });
}

/**
 * An IP literal's answer without a lookup: itself, or an error when it is
 * of the other family; undefined for a name.
 */
export function literalAddresses(host: string, family: AddressFamily): readonly string[] | Error | undefined {
  const literal = net.isIP(host);
  if (literal === 0) return undefined;
  return literal === family ? [host] : new Error(`${host} is not an IPv${family} address`);
}

export const resolveHost: Resolve = async (host, family: AddressFamily, signal) => {
  signal.throwIfAborted();
  const literal = literalAddresses(host, family);
  if (literal instanceof Error) throw literal;
  if (literal !== undefined) return [...literal];
  let answers: { address: string; family: number }[];
  try {
    // node:dns/promises at the first name, not with the daemon: pools of addresses never need it.
    answers = await abortable(process.getBuiltinModule('node:dns/promises').lookup(host, { family, all: true }), signal);
  } catch (error) {
    if (signal.aborted) throw error;
    const code = (error as { code?: unknown }).code;
    throw new Error(`cannot resolve ${host} (IPv${family})${typeof code === 'string' ? `: ${code}` : ''}`);
  }
  const addresses = [...new Set(answers.filter((a) => a.family === family).map((a) => a.address))];
  if (addresses.length === 0) throw new Error(`no IPv${family} address for ${host}`);
  return addresses;
};
