/** What recent-crash-child.ts and its test agree on (importing the child would run it). */
export const CRASH_TOPIC = 'press-7/line1/temp';
