/**
 * `pybal ipvs`: prints the kernel's IPVS table as the daemon reads it (over
 * generic netlink, not via ipvsadm), laid out like `ipvsadm -Ln`; with
 * `--stats` or `--rate`, its counters or rate estimates as `ipvsadm -Ln
 * --stats` and `--rate` print them (`--exact` as ipvsadm's).
 */
import { createIpvsClient } from '../ipvs/client.js';
import { formatTable, type TableSnapshot, type TableView } from '../ipvs/format.js';
import { createSystemClock, type Clock } from '../runtime/clock.js';
import { errorMessage } from '../runtime/errors.js';

export interface IpvsCommandIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
}

export interface IpvsCommandOptions {
  readonly clock?: Clock;
  /** Per-request deadline. Default 5000. */
  readonly timeoutMs?: number;
  /** The table (default), its counters (`--stats`) or the kernel's rate estimates (`--rate`). */
  readonly view?: TableView;
  /** `--exact`: counters in full, not shortened to K, M, G. */
  readonly exact?: boolean;
}

/** Runs the subcommand; returns the process exit status (0 ok, 1 error). */
export async function runIpvsCommand(io: IpvsCommandIo, options: IpvsCommandOptions = {}): Promise<number> {
  let client;
  try {
    client = await createIpvsClient({ clock: options.clock ?? createSystemClock(), timeoutMs: options.timeoutMs ?? 5000 });
  } catch (error) {
    io.stderr(`pybal ipvs: cannot open IPVS over generic netlink: ${errorMessage(error)}\n`);
    return 1;
  }
  try {
    const info = await client.info();
    const services: TableSnapshot['services'][number][] = [];
    for (const service of await client.listServices()) services.push({ service, dests: await client.listDests(service.key) });
    io.stdout(formatTable({ info, services }, { view: options.view ?? 'table', exact: options.exact ?? false }));
    return 0;
  } catch (error) {
    io.stderr(`pybal ipvs: ${errorMessage(error)}\n`);
    return 1;
  } finally {
    client.close();
  }
}
