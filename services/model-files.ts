import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';

export const WEIGHTS_FILE = 'weights.bin';

/** Raised when a model directory cannot be read: the message names the file and the fix. */
export class ModelFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelFileError';
  }
}

/**
 * Builds a tfjs IO handler that reads and writes a Layers model as `model.json` plus weight files in
 * a directory. The `file://` scheme needs @tensorflow/tfjs-node, which is optional here, so this
 * handler works with every backend.
 */
export function modelDirectory(directory: string): tf.io.IOHandler {
  return {
    load: () => readModelArtifacts(directory),
    save: (artifacts) => writeModelArtifacts(directory, artifacts),
  };
}

async function readModelArtifacts(directory: string): Promise<tf.io.ModelArtifacts> {
  const modelPath = path.join(directory, 'model.json');
  const modelJson = readJsonFile(modelPath) as tf.io.ModelJSON;
  if (!modelJson.modelTopology || !Array.isArray(modelJson.weightsManifest)) {
    throw new ModelFileError(`${modelPath} is not a TF.js Layers model: modelTopology or weightsManifest is missing`);
  }

  const weightSpecs: tf.io.WeightsManifestEntry[] = [];
  const buffers: ArrayBuffer[] = [];
  for (const group of modelJson.weightsManifest) {
    const groupBuffers = group.paths.map((relative) => readWeightFile(path.join(directory, relative)));
    const groupBytes = groupBuffers.reduce((sum, buffer) => sum + buffer.byteLength, 0);
    const expectedBytes = group.weights.reduce((sum, spec) => sum + weightBytes(spec), 0);
    if (groupBytes !== expectedBytes) {
      throw new ModelFileError(
        `weight file ${group.paths.map((p) => path.join(directory, p)).join(', ')} has ${groupBytes} bytes but ` +
          `model.json describes ${expectedBytes}: the file is truncated or belongs to another model; copy it again`,
      );
    }
    weightSpecs.push(...group.weights);
    buffers.push(...groupBuffers);
  }

  return {
    modelTopology: modelJson.modelTopology,
    format: modelJson.format,
    generatedBy: modelJson.generatedBy,
    convertedBy: modelJson.convertedBy,
    trainingConfig: modelJson.trainingConfig,
    weightSpecs,
    weightData: tf.io.concatenateArrayBuffers(buffers),
  };
}

async function writeModelArtifacts(directory: string, artifacts: tf.io.ModelArtifacts): Promise<tf.io.SaveResult> {
  if (!artifacts.weightSpecs || !artifacts.weightData) {
    throw new ModelFileError('the model has no weights to save');
  }
  const weightData = Array.isArray(artifacts.weightData)
    ? tf.io.concatenateArrayBuffers(artifacts.weightData)
    : artifacts.weightData;

  fs.mkdirSync(directory, { recursive: true });
  const modelJson: tf.io.ModelJSON = {
    modelTopology: artifacts.modelTopology ?? {},
    format: artifacts.format,
    generatedBy: artifacts.generatedBy,
    convertedBy: artifacts.convertedBy,
    trainingConfig: artifacts.trainingConfig,
    weightsManifest: [{ paths: [WEIGHTS_FILE], weights: artifacts.weightSpecs }],
  };

  // Write to temporary names and rename, so that a crash never leaves a half-written model behind.
  writeFileAtomic(path.join(directory, WEIGHTS_FILE), Buffer.from(weightData));
  writeFileAtomic(path.join(directory, 'model.json'), JSON.stringify(modelJson));

  return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(modelJson) };
}

/** Reads and parses a JSON file, naming the path in every failure. */
export function readJsonFile(filePath: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(filePath, 'utf8');
  } catch (error) {
    throw new ModelFileError(`cannot read ${filePath}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ModelFileError(`${filePath} is not valid JSON: ${(error as Error).message}`);
  }
}

/** Writes a file through a temporary name in the same directory, then renames it into place. */
export function writeFileAtomic(filePath: string, data: string | Buffer): void {
  const temporaryPath = `${filePath}.${process.pid}.tmp`;
  fs.writeFileSync(temporaryPath, data);
  fs.renameSync(temporaryPath, filePath);
}

function readWeightFile(filePath: string): ArrayBuffer {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(filePath);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new ModelFileError(`weight file ${filePath} is missing; copy it next to model.json`);
    throw new ModelFileError(`cannot read weight file ${filePath}: ${code ?? String(error)}`);
  }
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}

function weightBytes(spec: tf.io.WeightsManifestEntry): number {
  const count = spec.shape.reduce((product, size) => product * size, 1);
  if (!spec.quantization) return count * 4;
  return count * (spec.quantization.dtype === 'uint8' ? 1 : 2);
}
