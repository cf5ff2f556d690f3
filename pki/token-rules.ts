/**
 * The rules an enrollment token's lifetime and URLs follow, apart from the JWT code (tokens.ts)
 * so that checking a command line does not load a JOSE library.
 */

/** A minute is the least time in which an operator can carry a token to a plant host. */
export const MIN_TOKEN_TTL_SECONDS = 60;
/** A week bounds how long a leaked, unused token stays dangerous, yet covers a site visit. */
export const MAX_TOKEN_TTL_SECONDS = 7 * 24 * 60 * 60;
/** One hour: enough to paste the token on the agent host, short enough to expire if forgotten. */
export const DEFAULT_TOKEN_TTL_SECONDS = 60 * 60;
/** A relay has a handful of enrollment addresses (one per network it serves). */
export const MAX_TOKEN_URLS = 8;
const MAX_URL_LENGTH = 512;

export function isEnrollmentUrl(value: string): boolean {
  if (value.length > MAX_URL_LENGTH || !URL.canParse(value)) return false;
  const url = new URL(value);
  return (
    (url.protocol === 'wss:' || url.protocol === 'https:') &&
    url.hostname.length > 0 &&
    url.username === '' &&
    url.password === '' &&
    url.hash === ''
  );
}
