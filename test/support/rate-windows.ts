/**
 * What a relay counting in one-second windows would see of frames sent at `times` (ms) with
 * `sizes` (bytes): the most frames and bytes in any window, which may start at any frame.
 */
export function busiestSecond(
  times: readonly number[],
  sizes: readonly number[],
): { readonly frames: number; readonly bytes: number } {
  let frames = 0;
  let bytes = 0;
  let end = 0;
  let inWindow = 0;
  let windowBytes = 0;
  for (let start = 0; start < times.length; start++) {
    while (end < times.length && (times[end] as number) < (times[start] as number) + 1000) {
      inWindow++;
      windowBytes += sizes[end] as number;
      end++;
    }
    frames = Math.max(frames, inWindow);
    bytes = Math.max(bytes, windowBytes);
    inWindow--;
    windowBytes -= sizes[start] as number;
  }
  return { frames, bytes };
}
