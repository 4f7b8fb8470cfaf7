import createError from 'http-errors';
import type { PredictionBatcher } from './batcher';
import type { LoadedModel, Prediction } from './model';
import { itemError } from './model-input';

// The model as the Open Inference Protocol (KServe v2) describes it: one FP32 input tensor of
// images, and two outputs, the probabilities of every label and the most likely label.

/** Name of the model's input tensor. */
export const INPUT_NAME = 'pixels';
/** Output of shape [N, labels]: one probability a label, in the order of the model's labels. */
export const PROBABILITIES_OUTPUT = 'probabilities';
/** Output of shape [N]: the label with the highest probability. */
export const LABEL_OUTPUT = 'label';
const OUTPUT_NAMES = [PROBABILITIES_OUTPUT, LABEL_OUTPUT];

export interface TensorMetadata {
  name: string;
  datatype: string;
  shape: number[];
}

export interface ModelMetadataResponse {
  name: string;
  versions: string[];
  platform: string;
  inputs: TensorMetadata[];
  outputs: TensorMetadata[];
}

export interface InferInput {
  name: string;
  shape: number[];
  datatype: string;
  parameters?: Record<string, string | number | boolean>;
  data: unknown[];
}

export interface InferRequest {
  id?: string;
  model_name?: string;
  model_version?: string;
  inputs: InferInput[];
  outputs?: { name: string }[];
}

export type InferOutput =
  | { name: string; shape: number[]; datatype: 'FP32'; data: number[] }
  | { name: string; shape: number[]; datatype: 'BYTES'; data: string[] };

export interface InferResponse {
  model_name: string;
  model_version: string;
  id?: string;
  outputs: InferOutput[];
}

/**
 * Throws 404 unless `name`, and `version` when given, name the served model. The protocol lets a
 * server pick the version when the URL has none, and this one serves one version.
 */
export function checkModelName(model: LoadedModel, name: string, version?: string): void {
  const { metadata } = model;
  if (name !== metadata.name) {
    throw createError(404, `model "${name}" not found; this server serves "${metadata.name}"`);
  }
  if (version !== undefined && version !== metadata.version) {
    throw createError(404, `version "${version}" of model "${name}" not found; this server serves version "${metadata.version}"`);
  }
}

/** Returns the model metadata: its versions, its input tensor and its output tensors. */
export function describeModel(model: LoadedModel): ModelMetadataResponse {
  const { metadata, inputSize } = model;
  return {
    name: metadata.name,
    versions: [metadata.version],
    platform: model.inferencePath.kind === 'graph' ? 'tensorflowjs_graphmodel' : 'tensorflowjs_layersmodel',
    inputs: [{ name: INPUT_NAME, datatype: 'FP32', shape: [-1, inputSize.height, inputSize.width, inputSize.channels] }],
    outputs: [
      { name: PROBABILITIES_OUTPUT, datatype: 'FP32', shape: [-1, metadata.labels.length] },
      { name: LABEL_OUTPUT, datatype: 'BYTES', shape: [-1] },
    ],
  };
}

/**
 * Runs an inference request: checks the input tensor, splits it into one input per image, and
 * classifies them through the batcher, which rejects the request with 503 when its queue is full.
 * Throws 400 for an invalid tensor, 413 for more than `maxItems` images and 415 for binary data.
 */
export async function infer(model: LoadedModel, batcher: PredictionBatcher, request: InferRequest, maxItems: number): Promise<InferResponse> {
  checkBodyNames(model, request);
  const outputNames = selectOutputs(request.outputs);
  const inputs = readInputTensor(model, request.inputs, maxItems);

  const predictions = await batcher.admitAndPredict(inputs.length, async () => inputs);

  const response: InferResponse = {
    model_name: model.metadata.name,
    model_version: model.metadata.version,
    outputs: outputNames.map((name) => buildOutput(name, predictions, model.metadata.labels.length)),
  };
  if (request.id !== undefined) response.id = request.id;
  return response;
}

function checkBodyNames(model: LoadedModel, request: InferRequest): void {
  const { metadata } = model;
  if (request.model_name !== undefined && request.model_name !== metadata.name) {
    throw itemError(400, 'model_name', `"${request.model_name}" differs from the model in the URL, "${metadata.name}"`);
  }
  if (request.model_version !== undefined && request.model_version !== '' && request.model_version !== metadata.version) {
    throw itemError(400, 'model_version', `"${request.model_version}" is not served; the served version is "${metadata.version}"`);
  }
}

function selectOutputs(requested: { name: string }[] | undefined): string[] {
  if (requested === undefined || requested.length === 0) return OUTPUT_NAMES;
  return requested.map((output, index) => {
    if (!OUTPUT_NAMES.includes(output.name)) {
      throw itemError(400, `outputs[${index}].name`, `unknown output "${output.name}"; the outputs are ${OUTPUT_NAMES.map((name) => `"${name}"`).join(' and ')}`);
    }
    return output.name;
  });
}

/**
 * Checks the one input tensor and returns one model input per image. The shape is
 * [N, height, width, channels] or [N, height × width × channels], and the data is flat or nested
 * as the shape, with every value in 0..1.
 */
function readInputTensor(model: LoadedModel, inputs: InferInput[], maxItems: number): Float32Array[] {
  if (inputs.length !== 1) {
    throw itemError(400, 'inputs', `the model takes one input tensor, "${INPUT_NAME}"; got ${inputs.length}`);
  }
  const [input] = inputs;
  if (input.name !== INPUT_NAME) {
    throw itemError(400, 'inputs[0].name', `unknown input "${input.name}"; the model's input is "${INPUT_NAME}"`);
  }
  if (input.parameters?.binary_data_size !== undefined) {
    throw itemError(415, 'inputs[0].parameters.binary_data_size', 'binary tensor data is not supported; send the values in "data" (binary_data=False)');
  }
  if (input.datatype !== 'FP32') {
    throw itemError(400, 'inputs[0].datatype', `${input.datatype} is not supported; send FP32`);
  }

  const { height, width, channels } = model.inputSize;
  const count = checkShape(input.shape, [height, width, channels]);
  if (count > maxItems) {
    throw itemError(413, 'inputs[0].shape', `${count} images is more than MAX_ITEMS (${maxItems}); split the request`);
  }

  const values = flattenData(input.data, input.shape, 'inputs[0].data');
  const length = height * width * channels;
  const images: Float32Array[] = [];
  for (let i = 0; i < count; i++) images.push(values.subarray(i * length, (i + 1) * length));
  return images;
}

/** Returns the batch size N of a shape [N, h, w, c] or [N, h × w × c]; throws 400 for any other shape. */
function checkShape(shape: number[], [height, width, channels]: number[]): number {
  const imageShape = shape.slice(1);
  const isImage = imageShape.length === 3 && imageShape[0] === height && imageShape[1] === width && imageShape[2] === channels;
  const isFlat = imageShape.length === 1 && imageShape[0] === height * width * channels;
  if (!isImage && !isFlat) {
    throw itemError(
      400,
      'inputs[0].shape',
      `expected [N, ${height}, ${width}, ${channels}] or [N, ${height * width * channels}], got ${JSON.stringify(shape)}`,
    );
  }
  if (shape[0] < 1) throw itemError(400, 'inputs[0].shape', 'the batch size N must be at least 1');
  return shape[0];
}

/**
 * Reads tensor data given flat, or nested as `shape`, into one Float32Array in row-major order.
 * Every value must be a number in 0..1, as /predict requires of pixels.
 */
function flattenData(data: unknown[], shape: number[], path: string): Float32Array {
  const total = shape.reduce((product, size) => product * size, 1);
  const values = new Float32Array(total);

  if (data.length === total && !Array.isArray(data[0])) {
    copyUnitValues(data, values, 0, path);
    return values;
  }

  let offset = 0;
  const visit = (node: unknown, depth: number, nodePath: string): void => {
    if (!Array.isArray(node) || node.length !== shape[depth]) {
      throw itemError(400, nodePath, `expected ${total} values flat, or nested as the shape ${JSON.stringify(shape)}`);
    }
    if (depth === shape.length - 1) {
      copyUnitValues(node, values, offset, nodePath);
      offset += node.length;
      return;
    }
    for (let i = 0; i < node.length; i++) visit(node[i], depth + 1, `${nodePath}[${i}]`);
  };
  visit(data, 0, path);
  return values;
}

/** Copies numbers in 0..1 into `target` from `offset` on; throws 400 naming the first other value. */
function copyUnitValues(source: unknown[], target: Float32Array, offset: number, path: string): void {
  for (let i = 0; i < source.length; i++) {
    const value = source[i];
    if (typeof value !== 'number' || !(value >= 0 && value <= 1)) {
      throw itemError(400, `${path}[${i}]`, `expected a number in 0..1, got ${JSON.stringify(value)}`);
    }
    target[offset + i] = value;
  }
}

function buildOutput(name: string, predictions: Prediction[], labelCount: number): InferOutput {
  if (name === LABEL_OUTPUT) {
    return { name, shape: [predictions.length], datatype: 'BYTES', data: predictions.map((prediction) => prediction.label) };
  }
  return { name, shape: [predictions.length, labelCount], datatype: 'FP32', data: predictions.flatMap((prediction) => prediction.probabilities) };
}
