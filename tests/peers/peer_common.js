// What the Node test peers share: their simple command line, the report written through a
// temporary file (a test never reads half a report), the ways they are told to stop, and the
// LISTENING line a test waits for.
'use strict';

const fs = require('fs');

function die(name, msg) {
  process.stderr.write(`${name}: ${msg}\n`);
  process.exit(2);
}

// `--key value` options into a copy of `defaults` (`--some-key` sets `some_key`): a number
// default takes an integer, a boolean default is a flag without a value, anything else a string.
function parseArgs(name, defaults, argv = process.argv.slice(2)) {
  const a = { ...defaults };
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i].replace(/^--/, '').replace(/-/g, '_');
    if (!(key in a)) die(name, `unknown option ${argv[i]}`);
    if (typeof a[key] === 'boolean') { a[key] = true; continue; }
    const v = argv[++i];
    if (v === undefined) die(name, `${argv[i - 1]} needs a value`);
    if (typeof a[key] === 'number') {
      if (!/^\d+$/.test(v)) die(name, `${argv[i - 1]} needs a non-negative integer`);
      a[key] = parseInt(v, 10);
    } else {
      a[key] = v;
    }
  }
  return a;
}

// Writes the text `build()` returns to `path` (nothing without a path). A failure is reported
// on stderr and not thrown: a peer that cannot write its report still stops.
function writeReport(name, path, build) {
  if (!path) return;
  try {
    const tmp = `${path}.tmp${process.pid}`;
    fs.writeFileSync(tmp, build());
    fs.renameSync(tmp, path);
  } catch (e) {
    process.stderr.write(`${name}: report: ${e}\n`);
  }
}

// Calls `stop` once, on SIGTERM, SIGINT or (with --exit-on-stdin-eof) when the parent closes our
// stdin or dies, so a fixture never outlives the test that started it.
function onStop(stop, exitOnStdinEof) {
  let stopped = false;
  const once = () => {
    if (stopped) return;
    stopped = true;
    stop();
  };
  process.on('SIGTERM', once);
  process.on('SIGINT', once);
  if (exitOnStdinEof) {
    process.stdin.on('end', once);
    process.stdin.on('error', once);
    process.stdin.on('data', () => {});
    process.stdin.resume();
  }
}

// Listens on 127.0.0.1:`port` (0: a free port), calls `then(port)`, and prints the LISTENING line.
function listen(name, server, port, then) {
  server.on('error', (e) => {
    process.stderr.write(`${name}: ${e.message}\n`);
    process.exit(1);
  });
  server.listen(port, '127.0.0.1', () => {
    const bound = server.address().port;
    if (then) then(bound);
    process.stdout.write(`LISTENING 127.0.0.1:${bound}\n`);
  });
}

module.exports = { die, parseArgs, writeReport, onStop, listen };
