import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { FusedPlan, compileSequential } from './fused-plan';
import { ModelFileError, modelDirectory, readJsonFile } from './model-files';

/**
 * Input pipelines the server supports. `mnist-digit` turns any photo or drawing of one digit into a
 * 28x28 light-on-dark field as MNIST was made. `plain` resizes an image to the model's input size
 * and scales it to 0..1, for models that take raw tensors.
 */
export const PREPROCESSING_KINDS = ['mnist-digit', 'plain'] as const;
export type Preprocessing = (typeof PREPROCESSING_KINDS)[number];

const metadataSchema = z.object({
  name: z.string().min(1),
  version: z.string().min(1),
  labels: z.array(z.string()).min(2),
  inputShape: z.tuple([z.null(), z.number().int().positive(), z.number().int().positive(), z.number().int().min(1).max(4)]),
  preprocessing: z.enum(PREPROCESSING_KINDS),
  heldOutAccuracy: z.number().min(0).max(1).optional(),
  trainingSamples: z.number().int().optional(),
  testSamples: z.number().int().optional(),
  architecture: z.array(z.string()).optional(),
  trainedAt: z.string().optional(),
});

export type ModelMetadata = z.infer<typeof metadataSchema>;

export interface Prediction {
  label: string;
  confidence: number;
  /** One probability a label, in the order of the model's `labels`. */
  probabilities: number[];
}

/** Height, width and channels of one input. */
export interface InputSize {
  height: number;
  width: number;
  channels: number;
}

/**
 * The way the network runs: `fused` through a FusedPlan, `layers` through `LayersModel.execute` (a
 * model the plan cannot compile), `graph` through `GraphModel.predict`.
 */
export interface InferencePath {
  kind: 'fused' | 'layers' | 'graph';
  /** The plan's steps for `fused`; why the plan was not used for `layers`. */
  detail: string;
}

// Largest difference allowed between the fused plan's probabilities and execute's on the check
// input; float32 kernels that add in another order differ by about 1e-7.
const PLAN_TOLERANCE = 1e-5;

/** A loaded and warmed-up model with its metadata. */
export class LoadedModel {
  readonly metadata: ModelMetadata;
  readonly backend: string;
  readonly inputSize: InputSize;
  private readonly network: tf.LayersModel | tf.GraphModel;
  private readonly maxBatchSize: number;
  private plan: FusedPlan | null = null;
  private planRefusal = 'not checked yet';

  constructor(network: tf.LayersModel | tf.GraphModel, metadata: ModelMetadata, maxBatchSize: number) {
    this.network = network;
    this.metadata = metadata;
    this.backend = tf.getBackend();
    this.maxBatchSize = maxBatchSize;
    const [, height, width, channels] = metadata.inputShape;
    this.inputSize = { height, width, channels };
  }

  get inferencePath(): InferencePath {
    if (this.plan) return { kind: 'fused', detail: this.plan.steps.join(' -> ') };
    if (this.network instanceof tf.LayersModel) return { kind: 'layers', detail: this.planRefusal };
    return { kind: 'graph', detail: 'graph models run as converted' };
  }

  /**
   * Compiles a Layers model into a FusedPlan and keeps it only when it gives the same
   * probabilities as `execute` on `inputs`, so a layer option that the plan misreads can cost
   * speed but never change a prediction.
   */
  async useFusedPlanIfEqual(inputs: Float32Array[]): Promise<void> {
    if (!(this.network instanceof tf.LayersModel)) return;
    const compiled = compileSequential(this.network);
    if ('reason' in compiled) {
      this.planRefusal = compiled.reason;
      return;
    }

    const expected = await this.predictBatch(inputs);
    this.plan = compiled;
    let actual: Prediction[];
    try {
      actual = await this.predictBatch(inputs);
    } catch (error) {
      this.plan = null;
      this.planRefusal = `the fused plan failed: ${(error as Error).message}`;
      return;
    }
    const difference = largestDifference(expected, actual);
    if (!(difference <= PLAN_TOLERANCE)) {
      this.plan = null;
      this.planRefusal = `the fused plan's probabilities differ from execute's by ${difference}`;
    }
  }

  /** Number of values in one input. */
  get inputLength(): number {
    return this.inputSize.height * this.inputSize.width * this.inputSize.channels;
  }

  /**
   * Classifies inputs of `inputLength` values each, in model calls of at most MAX_BATCH_SIZE,
   * outside the PredictionBatcher's queue. Request paths use the batcher instead.
   */
  async predict(inputs: Float32Array[]): Promise<Prediction[]> {
    const predictions: Prediction[] = [];
    for (let start = 0; start < inputs.length; start += this.maxBatchSize) {
      const batch = inputs.slice(start, start + this.maxBatchSize);
      predictions.push(...(await this.predictBatch(batch)));
    }
    return predictions;
  }

  /**
   * Runs one model call on the inputs, which should number at most MAX_BATCH_SIZE. Returns one
   * prediction per input, in order. Throws when an input does not have `inputLength` values.
   */
  async predictBatch(inputs: Float32Array[]): Promise<Prediction[]> {
    const length = this.inputLength;
    const flat = new Float32Array(inputs.length * length);
    for (let i = 0; i < inputs.length; i++) {
      // Without this check a shorter input would be padded with zeros and classified as if valid.
      if (inputs[i].length !== length) {
        throw new Error(`input ${i} of the batch has ${inputs[i].length} values; the model takes ${length}`);
      }
      flat.set(inputs[i], i * length);
    }
    const { height, width, channels } = this.inputSize;

    // Input [batch, height, width, channels]; output [batch, labels]. The tidy frees the input and
    // every intermediate; the output is freed below once its values are read. A Layers model runs
    // through `execute`, in inference mode like `predict` but without predict's batch slicing and
    // checks, which cost about 100 µs a call on the wasm backend (tfjs 4.22).
    const output = tf.tidy(() => {
      const input = tf.tensor4d(flat, [inputs.length, height, width, channels]);
      if (this.plan) return this.plan.run(input);
      if (this.network instanceof tf.LayersModel) return this.network.execute(input, this.network.outputs[0].name) as tf.Tensor;
      return this.network.predict(input) as tf.Tensor;
    });
    let values: Float32Array;
    try {
      values = (await output.data()) as Float32Array;
    } finally {
      output.dispose();
    }

    const labels = this.metadata.labels;
    const predictions: Prediction[] = new Array(inputs.length);
    for (let row = 0; row < inputs.length; row++) {
      const probabilities: number[] = new Array(labels.length);
      let best = 0;
      for (let i = 0; i < labels.length; i++) {
        probabilities[i] = roundProbability(values[row * labels.length + i]);
        if (probabilities[i] > probabilities[best]) best = i;
      }
      predictions[row] = { label: labels[best], confidence: probabilities[best], probabilities };
    }
    return predictions;
  }
}

function largestDifference(expected: Prediction[], actual: Prediction[]): number {
  let largest = 0;
  expected.forEach((prediction, row) => {
    prediction.probabilities.forEach((value, i) => {
      largest = Math.max(largest, Math.abs(value - actual[row].probabilities[i]));
    });
  });
  return largest;
}

function roundProbability(value: number): number {
  return Number(value.toPrecision(6));
}

/**
 * Loads the model in `directory` (model.json, weights, metadata.json), checks that the network's
 * input and output shapes match the metadata, and runs one warm-up prediction. Throws
 * ModelFileError naming the file or value at fault.
 */
export async function loadModel(directory: string, maxBatchSize: number): Promise<LoadedModel> {
  if (!fs.existsSync(directory) || !fs.statSync(directory).isDirectory()) {
    throw new ModelFileError(`model directory ${path.resolve(directory)} does not exist; set MODEL_DIR to a directory with model.json and metadata.json`);
  }
  const metadata = readMetadata(path.join(directory, 'metadata.json'));

  const modelPath = path.join(directory, 'model.json');
  const format = (readJsonFile(modelPath) as { format?: string }).format;
  let network: tf.LayersModel | tf.GraphModel;
  try {
    network =
      format === 'graph-model'
        ? await tf.loadGraphModel(modelDirectory(directory))
        : await tf.loadLayersModel(modelDirectory(directory));
  } catch (error) {
    if (error instanceof ModelFileError) throw error;
    throw new ModelFileError(`cannot load the model in ${modelPath}: ${(error as Error).message}`);
  }

  const loaded = new LoadedModel(network, metadata, maxBatchSize);
  try {
    checkShapes(network, metadata, modelPath);
    await loaded.predict([new Float32Array(loaded.inputLength)]);
    await loaded.useFusedPlanIfEqual(planCheckInputs(loaded.inputLength));
  } catch (error) {
    network.dispose();
    throw error;
  }
  return loaded;
}

// Two inputs that exercise every weight: all zeros, and a fixed pattern of values in 0..1.
function planCheckInputs(length: number): Float32Array[] {
  const ramp = new Float32Array(length);
  for (let i = 0; i < length; i++) ramp[i] = (i * 37) % 101 / 100;
  return [new Float32Array(length), ramp];
}

function readMetadata(metadataPath: string): ModelMetadata {
  const raw = readJsonFile(metadataPath);
  const parsed = metadataSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const value = issue.path.reduce<unknown>((node, key) => (node as Record<PropertyKey, unknown> | undefined)?.[key], raw);
      return `${issue.path.join('.') || '(root)'}: ${issue.message} (found ${JSON.stringify(value) ?? 'nothing'})`;
    });
    throw new ModelFileError(`${metadataPath} is invalid: ${problems.join('; ')}`);
  }
  return parsed.data;
}

function checkShapes(network: tf.LayersModel | tf.GraphModel, metadata: ModelMetadata, modelPath: string): void {
  const inputShape = network.inputs[0].shape ?? [];
  const expected = metadata.inputShape;
  const matches = inputShape.length === expected.length && inputShape.every((size, i) => i === 0 || size === expected[i]);
  if (!matches) {
    throw new ModelFileError(
      `input shape mismatch: the model in ${modelPath} takes ${JSON.stringify(inputShape)} but metadata.json has ` +
        `${JSON.stringify(expected)}; correct inputShape in metadata.json`,
    );
  }

  const outputShape = network.outputs[0].shape ?? [];
  const outputSize = outputShape[outputShape.length - 1];
  if (outputSize !== undefined && outputSize !== -1 && outputSize !== null && outputSize !== metadata.labels.length) {
    throw new ModelFileError(
      `the model in ${modelPath} has ${outputSize} outputs but metadata.json lists ${metadata.labels.length} labels; ` +
        'make labels match the output layer',
    );
  }
}
