/**
 * Text that the relay puts in an error message on behalf of a peer: a map key it did not expect,
 * a peer name it could not find. Such text is the sender's own input, so it is bounded and reduced
 * to printable ASCII before it reaches the wire or a log line: an error must never carry control
 * characters (forged log lines, terminal escapes), and never outgrow MAX_ERROR_MESSAGE_LENGTH (the
 * receiver's decoder would refuse the error frame itself).
 */
import { MAX_ERROR_MESSAGE_LENGTH } from './limits.ts';

/**
 * A peer-supplied field, quoted in a message: 32 characters identify a key or a name well enough
 * for a developer to find the bug, and keep ten such fields inside one error message.
 */
export const MAX_QUOTED_FIELD_LENGTH = 32;
const ELLIPSIS = '...';
/** Printable ASCII but the backslash and the double quote, which would confuse the quoting. */
const UNSAFE_CHARACTER = /[^\x20-\x21\x23-\x5b\x5d-\x7e]/g;

/** `value` as it may appear inside a message: printable ASCII, at most MAX_QUOTED_FIELD_LENGTH. */
export function quoteField(value: string): string {
  const shortened =
    value.length > MAX_QUOTED_FIELD_LENGTH
      ? `${value.slice(0, MAX_QUOTED_FIELD_LENGTH - ELLIPSIS.length)}${ELLIPSIS}`
      : value;
  return `"${shortened.replace(UNSAFE_CHARACTER, '?')}"`;
}

/**
 * The last guard before an error message is encoded: whatever a handler built, the message that
 * leaves is printable ASCII and fits the frame's limit.
 */
export function boundMessage(message: string): string {
  const clean = message.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > MAX_ERROR_MESSAGE_LENGTH
    ? `${clean.slice(0, MAX_ERROR_MESSAGE_LENGTH - ELLIPSIS.length)}${ELLIPSIS}`
    : clean;
}
