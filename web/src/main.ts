/**
 * The page's entry point: it connects the panels to the elements of index.html. The module script
 * runs after the document is parsed, so every element exists.
 */
import { setUpAccountPanel } from './account-panel.js';
import { Schema, callApi } from './api.js';
import { setUpClassifyPanel } from './classify-panel.js';
import { byId, formatPercent } from './dom.js';
import { DrawingPad } from './drawing-pad.js';
import { showError } from './error-view.js';
import { setUpHistoryPanel } from './history-panel.js';
import { setUpOrderPanel } from './order-panel.js';
import { SessionStore } from './session.js';

/** The part of GET /model that the page shows. */
type ModelInfo = Pick<Schema<'ModelInfo'>, 'name' | 'version' | 'backend' | 'labels' | 'heldOutAccuracy'>;

const sessions = new SessionStore();
const pad = new DrawingPad(byId('drawing-pad', HTMLCanvasElement));
let labels: readonly string[] = [];

setUpAccountPanel(sessions);
setUpClassifyPanel(pad, () => labels);
const orders = setUpOrderPanel(pad, sessions, () => void orderHistory.refresh());
const orderHistory = setUpHistoryPanel(sessions, (orderId) => orders.openOrder(orderId));
void showModelInfo();

// Until GET /model responds, the chart names each probability by its index.
async function showModelInfo(): Promise<void> {
  const line = byId('model-info', HTMLParagraphElement);
  try {
    const { body: model } = await callApi<ModelInfo>('GET', '/model');
    labels = model.labels;
    const accuracy = model.heldOutAccuracy === null ? '' : `, ${formatPercent(model.heldOutAccuracy)} accurate on held-out digits`;
    line.textContent = `Model ${model.name} ${model.version} on the ${model.backend} backend${accuracy}.`;
  } catch (error) {
    showError(byId('model-error', HTMLDivElement), 'Could not read the model information', error);
  }
}
