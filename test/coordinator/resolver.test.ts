import { describe, expect, it } from 'vitest';
import { resolveHost } from '../../src/coordinator/resolver.js';

const live = (): AbortSignal => new AbortController().signal;

describe('resolveHost (the system resolver)', () => {
  it('an IP literal of the family resolves to itself', async () => {
    await expect(resolveHost('127.0.0.9', 4, live())).resolves.toEqual(['127.0.0.9']);
    await expect(resolveHost('2001:db8::5', 6, live())).resolves.toEqual(['2001:db8::5']);
  });

  it('an IP literal of the other family is an error naming it', async () => {
    await expect(resolveHost('127.0.0.9', 6, live())).rejects.toThrow('127.0.0.9 is not an IPv6 address');
    await expect(resolveHost('::1', 4, live())).rejects.toThrow('::1 is not an IPv4 address');
  });

  it('honours /etc/hosts, in the asked family', async () => {
    await expect(resolveHost('localhost', 4, live())).resolves.toContain('127.0.0.1');
  });

  it('an aborted lookup rejects with the abort reason', async () => {
    const abort = new AbortController();
    abort.abort(new Error('stopping'));
    await expect(resolveHost('localhost', 4, abort.signal)).rejects.toThrow('stopping');
  });
});
