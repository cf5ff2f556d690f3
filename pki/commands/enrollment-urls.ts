/**
 * Enrollment URLs as operators give them (`init --enroll-url`, `token create --url`), checked
 * against the rule tokens enforce, so a bad one is refused where it was typed rather than at the
 * first `token create`.
 */
import { isEnrollmentUrl, MAX_TOKEN_URLS } from '../token-rules.ts';
import { invalidArgument, quote } from './command.ts';

export function checkEnrollmentUrls(urls: readonly string[], option: string): readonly string[] {
  if (urls.length > MAX_TOKEN_URLS) throw invalidArgument(`at most ${MAX_TOKEN_URLS} ${option} may be given`);
  const bad = urls.find((url) => !isEnrollmentUrl(url));
  if (bad !== undefined) {
    throw invalidArgument(`${option} must be an https:// or wss:// URL without credentials: ${quote(bad)}`);
  }
  return urls;
}
