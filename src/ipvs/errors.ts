/** Typed IPVS errors: what the kernel (or the socket) said, about which command and object. */
import { getSystemErrorName } from 'node:util';

function errnoName(errno: number): string {
  try {
    return getSystemErrorName(-errno);
  } catch {
    return `errno ${errno}`;
  }
}

export class IpvsError extends Error {
  /** Positive errno (ETIMEDOUT for a request that got no answer in time). */
  readonly errno: number;
  /** The errno's name: EEXIST, ENOENT, EINVAL... */
  readonly code: string;
  /** The command, as the kernel names it: IPVS_CMD_NEW_DEST. */
  readonly command: string;
  /** The service or destination it was about, as ipvsadm prints it. */
  readonly object: string;

  constructor(errno: number, command: string, object: string, detail?: string) {
    const code = errnoName(errno);
    // Every IPVS command is for CAP_NET_ADMIN only: a pybal that runs without it says so.
    const why = detail ?? (code === 'EPERM' ? 'pybal needs CAP_NET_ADMIN' : undefined);
    super(`${command} ${object}: ${code}${why ? ` (${why})` : ''}`);
    this.name = 'IpvsError';
    this.errno = errno;
    this.code = code;
    this.command = command;
    this.object = object;
  }
}

export const ETIMEDOUT = 110;
export const ENOBUFS = 105;
export const EIO = 5;
export const EINVAL = 22;
