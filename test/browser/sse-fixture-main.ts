// Runs the SSE fixture page as a process (for lab tests, in a namespace):
//   node dist/test/browser/sse-fixture-main.js [host] [port]
// Prints "listening <url>" once it accepts connections; SIGTERM ends it.
import { SseFixtureServer } from './sse-fixture.js';

const server = new SseFixtureServer();
const url = await server.listen(process.argv[2] ?? '127.0.0.1', Number(process.argv[3] ?? 0));
process.stdout.write(`listening ${url}\n`);
process.once('SIGTERM', () => void server.close().then(() => process.exit(0)));
