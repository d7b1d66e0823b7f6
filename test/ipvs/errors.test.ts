/** What an IPVS error says: the command, the object, the errno's name, and why when pybal knows. */
import { describe, expect, it } from 'vitest';
import { IpvsError } from '../../src/ipvs/errors.js';

describe('IpvsError', () => {
  it('names the command, the object and the errno', () => {
    const e = new IpvsError(17, 'IPVS_CMD_NEW_DEST', 'TCP 192.0.2.1:80 -> 198.51.100.6:80');
    expect(e.message).toBe('IPVS_CMD_NEW_DEST TCP 192.0.2.1:80 -> 198.51.100.6:80: EEXIST');
    expect(e).toMatchObject({ errno: 17, code: 'EEXIST', command: 'IPVS_CMD_NEW_DEST' });
  });

  it('EPERM says which capability is missing (every IPVS command needs CAP_NET_ADMIN); a detail given wins', () => {
    expect(new IpvsError(1, 'IPVS_CMD_GET_SERVICE', 'services').message).toBe('IPVS_CMD_GET_SERVICE services: EPERM (pybal needs CAP_NET_ADMIN)');
    expect(new IpvsError(1, 'IPVS_CMD_GET_SERVICE', 'services', 'something else').message).toBe('IPVS_CMD_GET_SERVICE services: EPERM (something else)');
  });
});
