import { Schema, callApi } from './api.js';
import { byId } from './dom.js';
import { DrawingPad } from './drawing-pad.js';
import { clearError, showError } from './error-view.js';
import { renderPrediction } from './prediction-view.js';

/** The 200 body of POST /predict. */
type PredictResponse = Schema<'PredictResponse'>;

/**
 * Sets up classification of the drawing, of a chosen file and of a dropped file. Each is sent to
 * POST /predict as one multipart image file, so the service preprocesses it like any upload.
 */
export function setUpClassifyPanel(pad: DrawingPad, labels: () => readonly string[]): void {
  const classifyButton = byId('classify-drawing', HTMLButtonElement);
  const clearButton = byId('clear-drawing', HTMLButtonElement);
  const fileInput = byId('image-file', HTMLInputElement);
  const dropZone = byId('drop-zone', HTMLDivElement);
  const errorRegion = byId('classify-error', HTMLDivElement);
  const predictionRegion = byId('prediction', HTMLDivElement);

  const classify = async (image: Blob, fileName: string, source: string, control?: HTMLElement) => {
    clearError(errorRegion);
    predictionRegion.setAttribute('aria-busy', 'true');
    classifyButton.disabled = true;
    try {
      const form = new FormData();
      form.append('image', image, fileName);
      const { body } = await callApi<PredictResponse>('POST', '/predict', { form });
      renderPrediction(predictionRegion, body.predictions[0], labels(), source);
    } catch (error) {
      predictionRegion.replaceChildren();
      showError(errorRegion, `Could not classify ${source}`, error, { control, singleItem: true });
    } finally {
      predictionRegion.removeAttribute('aria-busy');
      classifyButton.disabled = false;
    }
  };

  classifyButton.addEventListener('click', async () => {
    // A blank canvas is sent too, and the service's response explains that it contains no digit.
    const png = await pad.toPng();
    await classify(png, 'drawing.png', 'the drawing');
  });

  clearButton.addEventListener('click', () => {
    pad.clear();
    predictionRegion.replaceChildren();
    clearError(errorRegion);
  });

  fileInput.addEventListener('change', async () => {
    const file = fileInput.files?.[0];
    if (!file) return;
    await classify(file, file.name, `the file ${file.name}`, fileInput);
    // Cleared so that choosing the same file again classifies it again.
    fileInput.value = '';
  });

  dropZone.addEventListener('dragover', (event) => {
    event.preventDefault();
    dropZone.classList.add('drag-over');
  });
  dropZone.addEventListener('dragleave', () => dropZone.classList.remove('drag-over'));
  dropZone.addEventListener('drop', async (event) => {
    event.preventDefault();
    dropZone.classList.remove('drag-over');
    const files = event.dataTransfer?.files;
    const file = files?.[0];
    if (!file || !files) return;
    // One prediction is shown at a time; several files belong in an order.
    const source = files.length === 1 ? `the file ${file.name}` : `the file ${file.name}, the first of ${files.length} dropped files (an order classifies several)`;
    await classify(file, file.name, source, fileInput);
  });

  // A file dropped beside the box would otherwise replace the page with the image.
  window.addEventListener('dragover', (event) => event.preventDefault());
  window.addEventListener('drop', (event) => event.preventDefault());
}
