import { Schema, callApi } from './api.js';
import { byId, countOf, createElement } from './dom.js';
import { clearError, showError } from './error-view.js';
import { describeOrderSummary } from './order-view.js';
import { SessionStore } from './session.js';

/** A page of GET /orders. */
type OrderPage = Schema<'OrderSummaryPage'>;

const PAGE_SIZE = 10;

export interface HistoryPanel {
  /** Reloads the first page of the signed-in user's orders. */
  refresh(): Promise<void>;
}

/** Sets up the list of the signed-in user's orders, newest first, each of which opens with `openOrder`. */
export function setUpHistoryPanel(sessions: SessionStore, openOrder: (orderId: string) => Promise<void>): HistoryPanel {
  const status = byId('history-status', HTMLParagraphElement);
  const list = byId('order-list', HTMLUListElement);
  const refreshButton = byId('refresh-orders', HTMLButtonElement);
  const moreButton = byId('more-orders', HTMLButtonElement);
  const errorRegion = byId('history-error', HTMLDivElement);

  let shownCount = 0;
  // Each load gets a number, so that the response to an older load never overwrites a newer one.
  let generation = 0;

  const load = async (offset: number) => {
    clearError(errorRegion);
    const session = sessions.session;
    const current = ++generation;
    if (!session) {
      list.replaceChildren();
      shownCount = 0;
      status.textContent = 'Sign up to see your orders here.';
      refreshButton.hidden = true;
      moreButton.hidden = true;
      return;
    }

    refreshButton.hidden = false;
    try {
      const { body: page } = await callApi<OrderPage>('GET', `/orders?limit=${PAGE_SIZE}&offset=${offset}`, { token: session.token });
      if (current !== generation) return;
      const rows = page.items.map((order) => {
        const row = createElement('li');
        const open = createElement('button', { text: describeOrderSummary(order) });
        open.type = 'button';
        open.addEventListener('click', () => void openOrder(order.id));
        row.append(open);
        return row;
      });
      if (offset === 0) list.replaceChildren(...rows);
      else list.append(...rows);
      shownCount = offset + page.items.length;
      status.textContent = page.total === 0 ? 'No orders yet.' : `Showing ${shownCount} of ${countOf(page.total, 'order')}, newest first. Choose one to open it.`;
      moreButton.hidden = shownCount >= page.total;
    } catch (error) {
      if (current !== generation) return;
      showError(errorRegion, 'Could not load your orders', error);
    }
  };

  refreshButton.addEventListener('click', () => void load(0));
  moreButton.addEventListener('click', () => void load(shownCount));
  sessions.onChange(() => void load(0));
  void load(0);

  return { refresh: () => load(0) };
}
