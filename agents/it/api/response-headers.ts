/**
 * Headers on every answer of the API's listener: no MIME sniffing, no referrer, and a policy that
 * lets a JSON answer opened as a page run nothing and be framed by no one. The dashboard's own
 * files replace the policy with DASHBOARD_CSP (dashboard-files.ts).
 */
export const API_HEADERS = {
  'x-content-type-options': 'nosniff',
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
  'referrer-policy': 'no-referrer',
} as const;
