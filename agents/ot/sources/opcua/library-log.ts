/**
 * node-opcua prints its warnings and errors with console.log, several lines each, on standard
 * output, where the agent's own log goes. Imported before node-opcua (its modules warn while they
 * load), this keeps that output to errors, one line each, on standard error; the source reports
 * what matters (a refused certificate, a lost connection) in its own status. NODEOPCUA_LOG_LEVEL,
 * node-opcua's own switch, still chooses the level when an operator sets it.
 */
import { format } from 'node:util';
import { LogLevel, setErrorLogger, setLogLevel, setWarningLogger } from 'node-opcua-debug';

/** One line of a library message is enough to search for it; its dumps are not. */
const MAX_LINE_LENGTH = 300;

/** node-opcua calls its loggers with the caller's file and line first, then what to print. */
function printLine(label: string) {
  return (_caller: unknown, ...parts: unknown[]) => {
    const text = format(...parts)
      .replace(/\s+/g, ' ')
      .trim();
    process.stderr.write(`node-opcua ${label}: ${text.slice(0, MAX_LINE_LENGTH)}\n`);
  };
}

if (process.env.NODEOPCUA_LOG_LEVEL === undefined) setLogLevel(LogLevel.Error);
setErrorLogger(printLine('error'));
setWarningLogger(printLine('warning'));
