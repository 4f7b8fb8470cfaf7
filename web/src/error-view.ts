import { ApiError, FieldError } from './api.js';
import { createElement } from './dom.js';

export interface ErrorOptions {
  /** The control whose value caused the error, which is marked invalid for screen readers. */
  control?: HTMLElement;
  /** True when the request carried one image, so naming it (`files[0]`) adds nothing. */
  singleItem?: boolean;
}

/**
 * Shows why an action failed in `region`, the alert placed next to the control that caused it: the
 * action, the service's explanation, each invalid field, and the request id to quote to support.
 */
export function showError(region: HTMLElement, action: string, error: unknown, options: ErrorOptions = {}): void {
  const fieldErrors = error instanceof ApiError ? error.problem?.errors ?? [] : [];
  const fieldTexts = fieldErrors.map((fieldError) => describeField(fieldError, options.singleItem ?? false));
  let message = explain(error);
  const details: HTMLElement[] = [];

  // The detail of a validation error repeats the field errors, so one of them is shown, not both.
  const detailRepeatsFields = fieldErrors.length > 0 && fieldErrors.every((fieldError) => message.includes(fieldError.message));
  if (detailRepeatsFields && fieldTexts.length === 1) {
    message = fieldTexts[0];
  } else if (fieldTexts.length > 0) {
    if (detailRepeatsFields) message = `${fieldTexts.length} values are invalid`;
    const list = createElement('ul');
    for (const text of fieldTexts) list.append(createElement('li', { text }));
    details.push(list);
  }

  const meta = describeResponse(error);
  if (meta) details.push(createElement('p', { className: 'problem-meta', text: meta }));

  show(region, action, message, details, options.control);
}

/** Shows a message that the page itself raises, such as a missing sign-in, in the same form as API errors. */
export function showMessage(region: HTMLElement, action: string, message: string, control?: HTMLElement): void {
  show(region, action, message, [], control);
}

/** Empties `region` and clears the invalid mark of the control it was shown for. */
export function clearError(region: HTMLElement): void {
  region.replaceChildren();
  const controlId = region.dataset.control;
  if (controlId) document.getElementById(controlId)?.removeAttribute('aria-invalid');
  delete region.dataset.control;
}

function show(region: HTMLElement, action: string, message: string, details: HTMLElement[], control?: HTMLElement): void {
  clearError(region);
  const summary = createElement('p');
  summary.append(createElement('strong', { text: `${action}. ` }), sentence(message));
  region.replaceChildren(summary, ...details);
  if (control) {
    control.setAttribute('aria-invalid', 'true');
    region.dataset.control = control.id;
  }
}

function explain(error: unknown): string {
  if (error instanceof ApiError) {
    if (error.status === 503 && error.retryAfterSeconds !== null) {
      return `${error.message}. The service is busy: try again in ${error.retryAfterSeconds} s`;
    }
    return error.message;
  }
  return error instanceof Error ? error.message : String(error);
}

function describeResponse(error: unknown): string | null {
  if (!(error instanceof ApiError) || error.status === null) return null;
  const title = error.problem?.title ?? '';
  const status = `Error ${error.status}${title ? ` ${title}` : ''}`;
  return error.requestId ? `${status}. Request id ${error.requestId}: quote it when you report this problem.` : `${status}.`;
}

// The service names multipart files `files[N]` from 0; a person counts items from 1.
function describeField(fieldError: FieldError, singleItem: boolean): string {
  const file = /^files\[(\d+)\]$/.exec(fieldError.path);
  let name = fieldError.path;
  if (file) name = singleItem ? '' : `item ${Number(file[1]) + 1}`;
  else if (fieldError.path === 'files') name = 'items';
  return name ? `${name}: ${fieldError.message}` : fieldError.message;
}

// Service messages start in lower case and have no final full stop, because they are also read inside logs.
function sentence(text: string): string {
  const trimmed = text.trim();
  if (trimmed === '') return trimmed;
  const capitalised = trimmed[0].toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(capitalised) ? capitalised : `${capitalised}.`;
}
