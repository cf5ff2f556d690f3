/** Frames an agent connection received, and how it closed; tests wait on them with a bound. */
import type { ToAgentFrame } from '../../relay/protocol/frames.ts';
import { waitFor } from './wait.ts';

export class FrameRecorder {
  readonly frames: ToAgentFrame[] = [];
  closed: { code: number; reason: string } | undefined;

  /** The first recorded frame of `type` matching `predicate` (waits for it). */
  next<T extends ToAgentFrame['type']>(
    type: T,
    predicate: (frame: Extract<ToAgentFrame, { type: T }>) => boolean = () => true,
    timeoutMs = 5_000,
  ): Promise<Extract<ToAgentFrame, { type: T }>> {
    return waitFor(
      () =>
        this.frames.find(
          (frame): frame is Extract<ToAgentFrame, { type: T }> =>
            frame.type === type && predicate(frame as Extract<ToAgentFrame, { type: T }>),
        ),
      `${type} frame`,
      timeoutMs,
    );
  }

  waitClosed(timeoutMs = 5_000): Promise<{ code: number; reason: string }> {
    return waitFor(() => this.closed, 'connection close', timeoutMs);
  }
}
