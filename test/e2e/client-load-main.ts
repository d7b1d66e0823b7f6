// Steady clients for the lab, cheaper than a curl process per request (run in
// the lab's client namespace: node dist/test/e2e/client-load-main.js MODE
// HOST PORT [PERIOD_MS]). Every PERIOD_MS (default 100) it opens a TCP
// connection to HOST:PORT and:
// - `http`: sends one HTTP/1.0 GET and reads the answer to its end;
// - `hold`: says nothing and holds the connection for 3 s, as browsers and
//   API clients keep theirs open, so that behind a direct-routing director
//   every real server that answers has connections ESTABLISHED (ActiveConn).
// A connection not made (or, for http, not answered) within 1 s is dropped
// and counted as failed. It prints `made N failed M` every second.
import { connect } from 'node:net';

const [mode = 'http', host = '', portText = '80', periodText = '100'] = process.argv.slice(2);
const port = Number(portText);
let made = 0;
let failed = 0;

function once(): void {
  const socket = connect({ host, port });
  let done = false;
  const finish = (ok: boolean): void => {
    if (done) return;
    done = true;
    clearTimeout(giveUp);
    if (ok) made++;
    else failed++;
  };
  const giveUp = setTimeout(() => {
    finish(false);
    socket.destroy();
  }, 1_000);
  socket.on('error', () => {
    finish(false);
    socket.destroy();
  });
  socket.on('connect', () => {
    if (mode === 'hold') {
      finish(true);
      setTimeout(() => socket.destroy(), 3_000);
      return;
    }
    socket.write(`GET / HTTP/1.0\r\nHost: ${host}\r\n\r\n`);
  });
  let answer = '';
  socket.on('data', (chunk: Buffer) => (answer += chunk.toString('latin1')));
  socket.on('end', () => {
    finish(answer.startsWith('HTTP/1.'));
    socket.destroy();
  });
}

setInterval(once, Number(periodText));
setInterval(() => process.stdout.write(`made ${made} failed ${failed}\n`), 1_000);
