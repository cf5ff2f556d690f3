/** What the crash test and its child process agree on. */
export const CRASH_STREAMS = ['press-7/crash/s0', 'press-7/crash/s1', 'press-7/crash/s2', 'press-7/crash/s3'];
/** Small segments, so kills also land while a segment is being sealed or created. */
export const CRASH_LOG_LIMITS = { maxBytes: 256 * 1024 * 1024, maxAgeMs: 3_600_000, segmentBytes: 16 * 1024 };
export const CRASH_APPENDERS = 8;
export const MAX_CRASH_APPEND_RECORDS = 20;
