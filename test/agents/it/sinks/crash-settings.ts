/** What the sink crash test and its child process agree on. */
export const CRASH_TOPICS = ['press-7/crash/t0', 'press-7/crash/t1', 'press-7/crash/t2', 'press-7/crash/t3'];
export const CRASH_WRITERS = 8;
export const MAX_CRASH_WRITE_ENTRIES = 20;
/** One write in this many is a gap (of up to MAX_CRASH_GAP sequences) instead of points. */
export const CRASH_GAP_EVERY = 20;
export const MAX_CRASH_GAP = 50;
/**
 * The child's clock advances this much at every reading (about once per commit), and now and then
 * by hours, so kills also land around checkpoints (every CHECKPOINT_EVERY_MS) and day rollovers.
 */
export const CRASH_CLOCK_STEP_MS = 1_700;
export const CRASH_CLOCK_JUMP_MS = 6 * 3_600_000;
export const CRASH_CLOCK_JUMP_EVERY = 100;
/** Each round's child starts its clock this much later than the last round's. */
export const CRASH_ROUND_CLOCK_MS = 2 * 86_400_000;
export const CRASH_GAP_REASON = 'retention';

/** What the reset crash test and its child agree on. */
export const RESET_CRASH_TOPIC = 'press-7/crash/reset';
export const RESET_CRASH_REASON = 'the OT log was re-created';
export const RESET_CRASH_EPOCHS = ['5c1e0f8a9b2d4e67', '00000000000000e1'];
