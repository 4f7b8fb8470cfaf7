import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../services/backend';
import { compileSequential } from '../services/fused-plan';
import { loadModel } from '../services/model';
import { modelDirectory } from '../services/model-files';

jest.setTimeout(60_000);

const SIDE = 12;

// Layers that train with a seed, so every run compares the same weights.
function seeded(seed: number) {
  return { kernelInitializer: tf.initializers.glorotUniform({ seed }), biasInitializer: tf.initializers.randomNormal({ seed: seed + 1, stddev: 0.3 }) };
}

function inputBatch(batch: number, channels: number): tf.Tensor4D {
  return tf.randomUniform([batch, SIDE, SIDE, channels], 0, 1, 'float32', 7) as tf.Tensor4D;
}

// Runs the model through the plan and through Layers' predict, and returns the largest difference.
function compareWithPredict(model: tf.LayersModel, channels = 1): number {
  const plan = compileSequential(model);
  if ('reason' in plan) throw new Error(`expected a plan, got the refusal: ${plan.reason}`);
  return tf.tidy(() => {
    const input = inputBatch(3, channels);
    const expected = model.predict(input) as tf.Tensor;
    const actual = plan.run(input);
    expect(actual.shape).toEqual(expected.shape);
    return tf.max(tf.abs(tf.sub(expected, actual))).dataSync()[0];
  });
}

describe('fused plan of a Sequential model', () => {
  beforeAll(async () => {
    await selectBackend('wasm');
  });

  test.each([
    ['same padding, stride 2, relu', { padding: 'same', strides: 2, activation: 'relu' }],
    ['valid padding, stride 1, linear', { padding: 'valid', strides: 1, activation: 'linear' }],
    ['dilation 2, elu', { padding: 'same', dilationRate: 2, activation: 'elu' }],
    ['no bias, sigmoid', { padding: 'valid', useBias: false, activation: 'sigmoid' }],
    ['relu6, rectangular stride', { padding: 'same', strides: [2, 1], activation: 'relu6' }],
    ['tanh, applied after the convolution', { padding: 'same', activation: 'tanh' }],
  ] as const)('conv2d with %s gives the same output as predict', (_name, options) => {
    const model = tf.sequential({
      layers: [
        tf.layers.conv2d({ inputShape: [SIDE, SIDE, 2], filters: 4, kernelSize: 3, ...seeded(1), ...options } as Parameters<typeof tf.layers.conv2d>[0]),
        tf.layers.flatten(),
        tf.layers.dense({ units: 5, activation: 'softmax', ...seeded(3) }),
      ],
    });
    expect(compareWithPredict(model, 2)).toBeLessThan(1e-5);
  });

  test('pooling, dropout and activation layers match predict', () => {
    const model = tf.sequential({
      layers: [
        tf.layers.conv2d({ inputShape: [SIDE, SIDE, 1], filters: 6, kernelSize: 3, padding: 'same', activation: 'relu', ...seeded(11) }),
        tf.layers.maxPooling2d({ poolSize: 2 }),
        tf.layers.conv2d({ filters: 8, kernelSize: 3, padding: 'valid', ...seeded(13) }),
        tf.layers.activation({ activation: 'relu' }),
        tf.layers.averagePooling2d({ poolSize: 2, strides: 1, padding: 'same' }),
        tf.layers.flatten(),
        tf.layers.dropout({ rate: 0.5 }),
        tf.layers.dense({ units: 16, activation: 'elu', ...seeded(17) }),
        tf.layers.dense({ units: 10, ...seeded(19) }),
        tf.layers.activation({ activation: 'softmax' }),
      ],
    });
    expect(compareWithPredict(model)).toBeLessThan(1e-5);
  });

  test.each([
    [
      'a layer type without a fused form',
      () => tf.sequential({ layers: [tf.layers.batchNormalization({ inputShape: [SIDE, SIDE, 1] }), tf.layers.flatten(), tf.layers.dense({ units: 2 })] }),
      /batch_normalization.*BatchNormalization.*no fused form/,
    ],
    [
      'dense on a rank-4 input',
      () => tf.sequential({ layers: [tf.layers.dense({ inputShape: [SIDE, SIDE, 1], units: 2 })] }),
      /Dense.*rank 4/,
    ],
    [
      'an unsupported activation',
      () => tf.sequential({ layers: [tf.layers.flatten({ inputShape: [SIDE, SIDE, 1] }), tf.layers.dense({ units: 2, activation: 'softplus' })] }),
      /activation softplus is not supported/,
    ],
    [
      'a functional model',
      () => {
        const input = tf.input({ shape: [SIDE, SIDE, 1] });
        const output = tf.layers.dense({ units: 2 }).apply(tf.layers.flatten().apply(input)) as tf.SymbolicTensor;
        return tf.model({ inputs: input, outputs: output });
      },
      /not Sequential/,
    ],
  ])('refuses %s and names why', (_name, build, reason) => {
    const plan = compileSequential(build());
    expect('reason' in plan ? plan.reason : 'compiled').toMatch(reason);
  });
});

describe('loading a model the plan cannot compile', () => {
  let directory: string;

  beforeAll(async () => {
    await selectBackend('wasm');
    directory = fs.mkdtempSync(path.join(os.tmpdir(), 'inferline-plan-'));
    const model = tf.sequential({
      layers: [
        tf.layers.conv2d({ inputShape: [SIDE, SIDE, 1], filters: 4, kernelSize: 3, activation: 'relu', ...seeded(23) }),
        tf.layers.batchNormalization({ movingMeanInitializer: tf.initializers.randomNormal({ seed: 29 }) }),
        tf.layers.flatten(),
        tf.layers.dense({ units: 3, activation: 'softmax', ...seeded(31) }),
      ],
    });
    await model.save(modelDirectory(directory));
    const metadata = { name: 'batch-norm', version: '1', labels: ['a', 'b', 'c'], inputShape: [null, SIDE, SIDE, 1], preprocessing: 'plain' };
    fs.writeFileSync(path.join(directory, 'metadata.json'), JSON.stringify(metadata));
  });

  afterAll(() => {
    fs.rmSync(directory, { recursive: true, force: true });
  });

  test('runs it through execute, says why, and predicts what predict does', async () => {
    const loaded = await loadModel(directory, 8);
    expect(loaded.inferencePath).toEqual({ kind: 'layers', detail: expect.stringMatching(/BatchNormalization/) });

    const input = inputBatch(1, 1);
    const pixels = input.dataSync() as Float32Array;
    const [prediction] = await loaded.predict([pixels]);
    const network = await tf.loadLayersModel(modelDirectory(directory));
    const expected = Array.from((network.predict(input) as tf.Tensor).dataSync());
    prediction.probabilities.forEach((value, i) => expect(value).toBeCloseTo(expected[i], 5));
  });
});
