/**
 * The real server as a standalone program, for the lab: one runs in each real
 * server's network namespace and is driven over a Unix control socket.
 *
 *   node dist/test/support/real-server-main.js --name rs1 --host 198.51.100.6 --extra-host 203.0.113.1 \
 *     --http 80 --https 443 --tls-name rs1.example --tcp 9000 --udp 9001 --dns 53 \
 *     --dns-record www.example.com=192.0.2.10,2001:db8::10 --control /run/rs1.sock
 *
 * Prints {"ready":true,"ports":{...}} on stdout once listening. The control
 * socket takes newline-delimited JSON requests and answers one line each.
 * `--request JSON` (with --control) sends one request to a running server,
 * prints the reply and exits 0 (ok) or 1: handy from a shell in the lab.
 */
import { existsSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import { parseArgs } from 'node:util';
import {
  controlRealServer,
  parseControlRequest,
  startRealServer,
  type ControlReply,
  type RealServer,
  type RealServerOptions,
} from './real-server.js';

const usage = `usage: real-server-main --name NAME --host IP [--extra-host IP]... [--http PORT] [--https PORT] [--tls-name NAME]...
       [--tcp PORT] [--udp PORT] [--dns PORT] [--dns-record NAME=IP[,IP]]... [--control SOCKET]
   or: real-server-main --control SOCKET --request JSON`;

class UsageError extends Error {}

function parsePort(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) > 65535) throw new UsageError(`--${flag}: ${JSON.stringify(value)} is not a port number`);
  return Number(value);
}

function parseDnsRecords(values: readonly string[]): NonNullable<RealServerOptions['dnsRecords']> {
  const records: NonNullable<RealServerOptions['dnsRecords']> = {};
  for (const value of values) {
    const eq = value.indexOf('=');
    if (eq <= 0) throw new UsageError(`--dns-record: ${JSON.stringify(value)} is not NAME=IP[,IP]`);
    const name = value.slice(0, eq);
    const entry = (records[name] ??= { a: [], aaaa: [] });
    for (const ip of value.slice(eq + 1).split(',')) {
      if (net.isIPv4(ip)) entry.a?.push(ip);
      else if (net.isIPv6(ip)) entry.aaaa?.push(ip);
      else throw new UsageError(`--dns-record ${name}: ${JSON.stringify(ip)} is not an IP address`);
    }
  }
  return records;
}

interface Command {
  readonly options?: RealServerOptions;
  readonly control?: string;
  readonly request?: string;
}

function parseCommand(argv: readonly string[]): Command {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    options: {
      name: { type: 'string' },
      host: { type: 'string' },
      'extra-host': { type: 'string', multiple: true },
      http: { type: 'string' },
      https: { type: 'string' },
      'tls-name': { type: 'string', multiple: true },
      tcp: { type: 'string' },
      udp: { type: 'string' },
      dns: { type: 'string' },
      'dns-record': { type: 'string', multiple: true },
      control: { type: 'string' },
      request: { type: 'string' },
    },
  });
  if (values.request !== undefined) {
    if (values.control === undefined) throw new UsageError('--request needs --control');
    return { control: values.control, request: values.request };
  }
  if (values.name === undefined || values.host === undefined) throw new UsageError('--name and --host are required');
  if (net.isIP(values.host) === 0) throw new UsageError(`--host: ${JSON.stringify(values.host)} is not an IP address`);
  const options: RealServerOptions = { name: values.name, host: values.host };
  for (const host of values['extra-host'] ?? []) {
    if (net.isIP(host) === 0) throw new UsageError(`--extra-host: ${JSON.stringify(host)} is not an IP address`);
  }
  if (values['extra-host'] !== undefined) options.extraHosts = values['extra-host'];
  for (const key of ['http', 'https', 'tcp', 'udp', 'dns'] as const) {
    const port = parsePort(key, values[key]);
    if (port !== undefined) options[key] = port;
  }
  if (values['tls-name'] !== undefined) options.tlsNames = values['tls-name'];
  if (values['dns-record'] !== undefined) options.dnsRecords = parseDnsRecords(values['dns-record']);
  return values.control === undefined ? { options } : { options, control: values.control };
}

interface ControlServer {
  close(): void;
}

/** Answers newline-delimited JSON requests on a Unix socket. */
function serveControl(socketPath: string, server: RealServer, shutdown: () => void): Promise<ControlServer> {
  // A socket file left by a previous run that died would make listen() fail.
  if (existsSync(socketPath)) unlinkSync(socketPath);
  const clients = new Set<net.Socket>();
  const control = net.createServer((client) => {
    clients.add(client);
    client.on('close', () => clients.delete(client));
    client.on('error', () => {});
    let buffered = '';
    // Requests on one connection are answered in order, one at a time.
    let queue = Promise.resolve();
    client.on('data', (chunk) => {
      buffered += chunk.toString('utf8');
      for (let newline = buffered.indexOf('\n'); newline >= 0; newline = buffered.indexOf('\n')) {
        const line = buffered.slice(0, newline).trim();
        buffered = buffered.slice(newline + 1);
        if (line === '') continue;
        queue = queue.then(async () => {
          const { reply, stop } = await handle(line);
          client.write(`${JSON.stringify(reply)}\n`, () => {
            if (stop) shutdown();
          });
        });
      }
    });
  });
  const close = (): void => {
    control.close();
    for (const client of clients) client.destroy();
  };
  const handle = async (line: string): Promise<{ reply: ControlReply; stop: boolean }> => {
    try {
      const request = parseControlRequest(JSON.parse(line));
      switch (request.op) {
        case 'behaviour':
          await server.setBehaviour(request.behaviour);
          return { reply: { ok: true, ports: server.ports }, stop: false };
        case 'stats':
          return { reply: { ok: true, stats: server.stats() }, stop: false };
        case 'drop':
          server.dropConnections(request.how);
          return { reply: { ok: true }, stop: false };
        case 'stop':
          // Replied first, then stopped: the reply is the last thing the client gets.
          return { reply: { ok: true }, stop: true };
      }
    } catch (error) {
      return { reply: { ok: false, error: error instanceof Error ? error.message : String(error) }, stop: false };
    }
  };
  return new Promise((resolve, reject) => {
    control.once('error', reject);
    control.listen(socketPath, () => resolve({ close }));
  });
}

async function runServer(options: RealServerOptions, controlPath: string | undefined): Promise<void> {
  const server = await startRealServer(options);
  let control: ControlServer | undefined;
  let stopping = false;
  const shutdown = (): void => {
    if (stopping) return;
    stopping = true;
    void (async () => {
      control?.close();
      await server.stop();
      process.exitCode = 0;
    })();
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  if (controlPath !== undefined) control = await serveControl(controlPath, server, shutdown);
  process.stdout.write(`${JSON.stringify({ ready: true, ports: server.ports })}\n`);
}

async function main(argv: readonly string[]): Promise<void> {
  let command: Command;
  try {
    command = parseCommand(argv);
  } catch (error) {
    process.stderr.write(`real-server-main: ${error instanceof Error ? error.message : String(error)}\n${usage}\n`);
    process.exitCode = 2;
    return;
  }
  try {
    if (command.request !== undefined && command.control !== undefined) {
      const reply = await controlRealServer(command.control, parseControlRequest(JSON.parse(command.request)));
      process.stdout.write(`${JSON.stringify(reply)}\n`);
    } else if (command.options !== undefined) {
      await runServer(command.options, command.control);
    }
  } catch (error) {
    process.stderr.write(`real-server-main: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
    process.exit();
  }
}

await main(process.argv.slice(2));
