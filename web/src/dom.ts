/**
 * Returns the element with `id`, checked to be a `type` (such as HTMLButtonElement). Throws when
 * the page has no such element, which means index.html and the script disagree.
 */
export function byId<T extends HTMLElement>(id: string, type: { new (): T; prototype: T }): T {
  const element = document.getElementById(id);
  if (!(element instanceof type)) throw new Error(`index.html has no ${type.name} with id "${id}"`);
  return element;
}

/** Creates an element with optional class and text content. */
export function createElement<K extends keyof HTMLElementTagNameMap>(tag: K, options: { className?: string; text?: string } = {}): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  if (options.className) element.className = options.className;
  if (options.text !== undefined) element.textContent = options.text;
  return element;
}

/** Counts things in words: "1 item", "3 items". */
export function countOf(count: number, noun: string): string {
  return `${count} ${count === 1 ? noun : `${noun}s`}`;
}

/** Formats a share in 0..1 as a percentage with one decimal, such as "98.7%". */
export function formatPercent(share: number): string {
  return `${(share * 100).toFixed(1)}%`;
}

/** Formats an ISO 8601 timestamp as local date and time. */
export function formatTime(iso: string): string {
  return new Date(iso).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

/** Formats an amount in minor units of an ISO 4217 currency (cents for USD), such as "$0.75". */
export function formatMoney(minorUnits: number, currency: string): string {
  const format = new Intl.NumberFormat(undefined, { style: 'currency', currency });
  // Intl returns each currency's number of minor-unit digits: 2 for USD, 0 for JPY, 3 for KWD.
  const digits = format.resolvedOptions().maximumFractionDigits ?? 2;
  return format.format(minorUnits / 10 ** digits);
}
