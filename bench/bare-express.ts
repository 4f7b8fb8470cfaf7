/**
 * The HTTP ceiling for the benchmark: an Express 5 app that parses the same JSON body as
 * POST /predict and returns a constant prediction of the same shape, with no model, logging or
 * validation. Listens on HOST (default 127.0.0.1) and PORT.
 */
import express from 'express';

// The default MAX_BODY_BYTES of the service (16 MiB), so both apps accept the same bodies.
const BODY_LIMIT_BYTES = 16 * 1024 * 1024;

const PROBABILITIES = [0.0001, 0.0002, 0.0003, 0.9871, 0.0004, 0.0061, 0.0002, 0.0011, 0.0035, 0.001];
const CONSTANT_RESPONSE = {
  predictions: [{ label: '3', confidence: 0.9871, probabilities: PROBABILITIES }],
  model: { name: 'bare-express', version: '0' },
};

const app = express();
app.set('x-powered-by', false);
app.use(express.json({ limit: BODY_LIMIT_BYTES }));
app.post('/predict', function constantPredictRoute(_req, res) {
  res.json(CONSTANT_RESPONSE);
});

const host = process.env.HOST ?? '127.0.0.1';
const port = Number(process.env.PORT ?? 3000);
const server = app.listen(port, host, () => process.stdout.write(`bare express listening on http://${host}:${port}\n`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
