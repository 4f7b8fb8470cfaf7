import type { Schema } from './api.js';
import { createElement, formatPercent } from './dom.js';

/** One classified input, as POST /predict returns it, with one probability a label in the order of the model's labels. */
export type Prediction = Schema<'Prediction'>;

/**
 * Shows the predicted label and a bar chart of every label's probability. Each bar also carries
 * its percentage as text, so that screen readers read the chart as a list.
 */
export function renderPrediction(container: HTMLElement, prediction: Prediction, labels: readonly string[], source: string): void {
  const headline = createElement('p');
  headline.append(
    'Predicted digit ',
    createElement('span', { className: 'predicted-digit', text: prediction.label }),
    ` with ${formatPercent(prediction.confidence)} confidence, from ${source}.`,
  );

  const chart = createElement('ol', { className: 'chart' });
  chart.setAttribute('aria-label', 'Probability of each digit');
  prediction.probabilities.forEach((probability, index) => {
    const label = labels[index] ?? String(index);
    const row = createElement('li', { className: label === prediction.label ? 'top' : undefined });
    const bar = createElement('span', { className: 'bar' });
    bar.style.width = `${Math.max(0, Math.min(1, probability)) * 100}%`;
    const track = createElement('span');
    track.append(bar);
    row.append(createElement('span', { text: label }), track, createElement('span', { className: 'value', text: formatPercent(probability) }));
    chart.append(row);
  });

  container.replaceChildren(headline, chart);
}
