import { backpressureError } from './backpressure';
import type { LoadedModel, Prediction } from './model';

export interface BatcherOptions {
  /** Inputs per model call (MAX_BATCH_SIZE). */
  maxBatchSize: number;
  /** How long a batch that starts on an idle model waits for more inputs (MAX_BATCH_DELAY_MS); 0 waits for none. */
  maxDelayMs: number;
  /** Waiting inputs above which admitAndPredict rejects a request with 503 (MAX_QUEUED_INPUTS). */
  maxQueuedInputs: number;
  /** Called after every model call, failed ones included, with its input count and duration in seconds. */
  observeModelCall?: (batchSize: number, seconds: number) => void;
}

/** Counters since the batcher was created, for tests and metrics. */
export interface BatcherStats {
  /** Model calls started, including the separate re-runs after a merged call failed. */
  modelCalls: number;
  /** Model calls that threw. */
  failedModelCalls: number;
  /** Inputs sent to the model, summed over all calls. */
  inputsPredicted: number;
  /** Number of model calls by batch size. */
  batchSizeCounts: Map<number, number>;
  /** Milliseconds spent in model calls, including reading their output. */
  modelMs: number;
  /** Requests rejected with 503 because the queue was full. */
  rejectedRequests: number;
}

/** The inputs of one predict call and the predictions collected for them so far. */
interface Job {
  inputs: Float32Array[];
  predictions: Prediction[];
  /** Inputs already sent to a model call. */
  sentCount: number;
  /** Predictions received so far. */
  receivedCount: number;
  failed: boolean;
  resolve(predictions: Prediction[]): void;
  reject(error: unknown): void;
}

/** The inputs `start` to `end` (exclusive) of one job, as they enter one model call. */
interface Slice {
  job: Job;
  start: number;
  end: number;
}

/**
 * Merges the inputs of concurrent callers (/predict, synchronous /orders and the task runner) into
 * model calls of at most MAX_BATCH_SIZE inputs, and hands each caller its own predictions.
 *
 * A batch starts with `setImmediate` when the first input reaches an idle model, so callers whose
 * inputs arrive in the same event-loop turn share the call and a lone request waits on no timer.
 * With MAX_BATCH_DELAY_MS above 0, such a batch waits up to that long for more inputs unless it
 * fills first. Inputs that arrive while a call runs wait for the next call, which starts in the
 * next turn without a delay. Jobs are served first in, first out,
 * and a job larger than a batch is split over consecutive calls.
 */
export class PredictionBatcher {
  readonly stats: BatcherStats = {
    modelCalls: 0,
    failedModelCalls: 0,
    inputsPredicted: 0,
    batchSizeCounts: new Map(),
    modelMs: 0,
    rejectedRequests: 0,
  };
  private readonly model: LoadedModel;
  private readonly options: BatcherOptions;
  private readonly queue: Job[] = [];
  /** Inputs in the queue that no model call has taken yet. */
  private queuedInputs = 0;
  /** Inputs of admitted requests that are still being decoded. */
  private reservedInputs = 0;
  /** True from the moment a batch is scheduled until its call has finished. */
  private active = false;
  private delayTimer: NodeJS.Timeout | null = null;

  constructor(model: LoadedModel, options: BatcherOptions) {
    this.model = model;
    this.options = options;
  }

  /** Inputs waiting for a model call, including those of admitted requests still being decoded. */
  get waitingInputs(): number {
    return this.queuedInputs + this.reservedInputs;
  }

  /**
   * Classifies inputs in merged model calls. Returns one prediction per input, in order, and rejects
   * with the model's error when the model cannot classify these inputs. It never rejects for load:
   * the task runner calls it directly, because its chunks are work that was already accepted.
   */
  predict(inputs: Float32Array[]): Promise<Prediction[]> {
    if (inputs.length === 0) return Promise.resolve([]);
    return new Promise((resolve, reject) => {
      this.queue.push({ inputs, predictions: new Array(inputs.length), sentCount: 0, receivedCount: 0, failed: false, resolve, reject });
      this.queuedInputs += inputs.length;
      this.schedule();
    });
  }

  /**
   * Admits a request of `count` inputs, then prepares (decodes) its inputs and classifies them.
   * Throws 503 with `Retry-After` before preparing anything when the request would take the waiting
   * inputs over MAX_QUEUED_INPUTS. A request larger than the limit is admitted only when nothing
   * waits, so that it is not rejected forever.
   */
  async admitAndPredict(count: number, prepareInputs: () => Promise<Float32Array[]>): Promise<Prediction[]> {
    const waiting = this.waitingInputs;
    if (waiting > 0 && waiting + count > this.options.maxQueuedInputs) {
      this.stats.rejectedRequests++;
      const retryAfter = this.estimateDrainSeconds();
      throw backpressureError(
        `the prediction queue is full (${waiting} inputs waiting, MAX_QUEUED_INPUTS is ${this.options.maxQueuedInputs}); retry in ${retryAfter} s`,
        retryAfter,
      );
    }

    this.reservedInputs += count;
    let inputs: Float32Array[];
    try {
      inputs = await prepareInputs();
    } finally {
      this.reservedInputs -= count;
    }
    return this.predict(inputs);
  }

  /** Estimates, in whole seconds and at least 1, how long the waiting inputs take at the average speed so far. */
  private estimateDrainSeconds(): number {
    const msPerInput = this.stats.inputsPredicted > 0 ? this.stats.modelMs / this.stats.inputsPredicted : 0;
    return Math.max(1, Math.ceil((this.waitingInputs * msPerInput) / 1000));
  }

  private schedule(): void {
    // A batch that is scheduled or running takes the new inputs when it starts, or leaves them to the next one.
    if (this.active && this.delayTimer === null) return;
    const full = this.queuedInputs >= this.options.maxBatchSize;
    if (this.options.maxDelayMs === 0 || full) {
      if (this.delayTimer !== null) clearTimeout(this.delayTimer);
      this.delayTimer = null;
      this.active = true;
      setImmediate(() => void this.runBatch());
      return;
    }
    if (this.delayTimer === null) {
      this.active = true;
      this.delayTimer = setTimeout(() => {
        this.delayTimer = null;
        void this.runBatch();
      }, this.options.maxDelayMs);
    }
  }

  private async runBatch(): Promise<void> {
    const slices = this.takeBatch();
    try {
      await this.predictSlices(slices);
    } catch (error) {
      // predictSlices hands model errors to their callers, so this is a fault of the batcher itself.
      for (const slice of slices) this.fail(slice.job, error);
    }

    this.active = false;
    if (this.queuedInputs === 0) return;
    // More inputs wait: they go in the next turn, after I/O has had its turn, without a delay.
    this.active = true;
    setImmediate(() => void this.runBatch());
  }

  /** Takes up to MAX_BATCH_SIZE inputs from the front of the queue. */
  private takeBatch(): Slice[] {
    const slices: Slice[] = [];
    let size = 0;
    while (size < this.options.maxBatchSize && this.queue.length > 0) {
      const job = this.queue[0];
      const count = Math.min(this.options.maxBatchSize - size, job.inputs.length - job.sentCount);
      slices.push({ job, start: job.sentCount, end: job.sentCount + count });
      job.sentCount += count;
      size += count;
      if (job.sentCount === job.inputs.length) this.queue.shift();
    }
    this.queuedInputs -= size;
    return slices;
  }

  private async predictSlices(slices: Slice[]): Promise<void> {
    if (slices.length === 0) return;
    const inputs = slices.flatMap((slice) => slice.job.inputs.slice(slice.start, slice.end));

    let predictions: Prediction[];
    try {
      predictions = await this.callModel(inputs);
    } catch (error) {
      if (slices.length === 1) {
        this.fail(slices[0].job, error);
        return;
      }
      // Re-run each caller's inputs on their own, so that only the caller whose inputs the model
      // cannot classify gets the error.
      for (const slice of slices) {
        try {
          this.deliver(slice, await this.callModel(slice.job.inputs.slice(slice.start, slice.end)));
        } catch (sliceError) {
          this.fail(slice.job, sliceError);
        }
      }
      return;
    }

    let offset = 0;
    for (const slice of slices) {
      const count = slice.end - slice.start;
      this.deliver(slice, predictions.slice(offset, offset + count));
      offset += count;
    }
  }

  private async callModel(inputs: Float32Array[]): Promise<Prediction[]> {
    const { stats } = this;
    stats.modelCalls++;
    stats.inputsPredicted += inputs.length;
    stats.batchSizeCounts.set(inputs.length, (stats.batchSizeCounts.get(inputs.length) ?? 0) + 1);
    const started = performance.now();
    try {
      return await this.model.predictBatch(inputs);
    } catch (error) {
      stats.failedModelCalls++;
      throw error;
    } finally {
      const ms = performance.now() - started;
      stats.modelMs += ms;
      this.options.observeModelCall?.(inputs.length, ms / 1000);
    }
  }

  private deliver(slice: Slice, predictions: Prediction[]): void {
    const { job } = slice;
    if (job.failed) return;
    for (let i = 0; i < predictions.length; i++) job.predictions[slice.start + i] = predictions[i];
    job.receivedCount += predictions.length;
    if (job.receivedCount === job.inputs.length) job.resolve(job.predictions);
  }

  private fail(job: Job, error: unknown): void {
    if (job.failed) return;
    job.failed = true;
    // Inputs of the job that no call has taken yet leave the queue with it.
    const index = this.queue.indexOf(job);
    if (index !== -1) {
      this.queue.splice(index, 1);
      this.queuedInputs -= job.inputs.length - job.sentCount;
    }
    job.reject(error);
  }
}
