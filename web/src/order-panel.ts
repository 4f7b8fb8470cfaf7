import { Schema, callApi, isAbort } from './api.js';
import { Basket } from './basket.js';
import { byId, countOf, createElement, formatPercent } from './dom.js';
import { DrawingPad } from './drawing-pad.js';
import { clearError, showError, showMessage } from './error-view.js';
import { Order, QueuedOrder, renderOrder } from './order-view.js';
import { SessionStore } from './session.js';
import { Task, followTask } from './tasks.js';

// The service's default MAX_ITEMS. The service checks its configured limit itself.
const MAX_COPIES = 1000;

const TASK_STATUS_TEXT: Record<Task['status'], string> = {
  queued: 'Waiting in the queue',
  running: 'Classifying in the background',
  succeeded: 'Finished',
  failed: 'Failed',
  cancelled: 'Cancelled',
};

export interface OrderPanel {
  /** Shows one of the user's orders, and follows its task while it is pending. */
  openOrder(orderId: string): Promise<void>;
}

/**
 * Sets up the order: collecting drawings and files, placing it with POST /orders, following the
 * background task of a large order to the end (or cancelling it), and showing the result with
 * its bill. `onOrdersChanged` runs when an order was placed or finished.
 */
export function setUpOrderPanel(pad: DrawingPad, sessions: SessionStore, onOrdersChanged: () => void): OrderPanel {
  const copiesInput = byId('copies', HTMLInputElement);
  const addDrawingButton = byId('add-drawing', HTMLButtonElement);
  const filesInput = byId('order-files', HTMLInputElement);
  const itemsError = byId('order-items-error', HTMLDivElement);
  const basketSummary = byId('basket-summary', HTMLParagraphElement);
  const basketList = byId('basket', HTMLUListElement);
  const noteInput = byId('order-note', HTMLInputElement);
  const placeButton = byId('place-order', HTMLButtonElement);
  const emptyButton = byId('empty-basket', HTMLButtonElement);
  const orderError = byId('order-error', HTMLDivElement);
  const taskBox = byId('task', HTMLDivElement);
  const progressBar = byId('task-progress', HTMLProgressElement);
  const taskStatus = byId('task-status', HTMLParagraphElement);
  const cancelButton = byId('cancel-order', HTMLButtonElement);
  const cancelError = byId('cancel-error', HTMLDivElement);
  const orderView = byId('order-view', HTMLDivElement);

  const basket = new Basket();
  let drawingsAdded = 0;
  // Kept across retries of the same basket, so that a retry after a lost response cannot place the order twice.
  let idempotencyKey: string | null = null;
  let following: { controller: AbortController; orderId: string } | null = null;

  const renderBasket = (announcement = '') => {
    idempotencyKey = null;
    const count = basket.itemCount;
    const summary = count === 0 ? 'The order has no items yet.' : `The order has ${countOf(count, 'item')}.`;
    basketSummary.textContent = announcement ? `${announcement} ${summary}` : summary;
    basketList.replaceChildren(
      ...basket.list().map((entry) => {
        const row = createElement('li');
        const thumbnail = createElement('img');
        thumbnail.src = entry.previewUrl;
        thumbnail.alt = '';
        const remove = createElement('button', { text: 'Remove' });
        remove.type = 'button';
        remove.setAttribute('aria-label', `Remove ${entry.name}`);
        remove.addEventListener('click', () => {
          basket.remove(entry.id);
          renderBasket(`Removed ${entry.name}.`);
          placeButton.focus();
        });
        row.append(thumbnail, createElement('span', { text: entry.copies === 1 ? entry.name : `${entry.name} × ${entry.copies}` }), remove);
        return row;
      }),
    );
  };

  const stopFollowing = () => {
    following?.controller.abort();
    following = null;
    cancelButton.hidden = true;
  };

  const showProgress = (task: Task) => {
    const { done, total } = task.progress;
    progressBar.max = Math.max(total, 1);
    progressBar.value = done;
    const share = total === 0 ? 0 : done / total;
    taskStatus.textContent = `${TASK_STATUS_TEXT[task.status]}: ${done} of ${total} items (${formatPercent(share)}).`;
  };

  const showOrder = async (orderId: string, token: string) => {
    const { body: order } = await callApi<Order>('GET', `/orders/${orderId}`, { token });
    return { order, heading: renderOrder(orderView, order) };
  };

  // Follows the task at `taskUrl` until it ends, then shows the order as the service stored it.
  const follow = async (taskUrl: string, orderId: string, token: string) => {
    stopFollowing();
    const controller = new AbortController();
    following = { controller, orderId };
    clearError(cancelError);
    taskBox.hidden = false;
    cancelButton.hidden = false;
    progressBar.value = 0;
    taskStatus.textContent = `${TASK_STATUS_TEXT.queued}.`;

    try {
      const task = await followTask(taskUrl, token, showProgress, controller.signal);
      cancelButton.hidden = true;
      if (task.status === 'failed') showMessage(orderError, 'The order failed', task.error?.message ?? 'its background task failed');
      await showOrder(orderId, token);
      onOrdersChanged();
    } catch (error) {
      if (isAbort(error)) return;
      showError(orderError, 'Could not follow the progress of the order', error);
    } finally {
      if (following?.controller === controller) following = null;
    }
  };

  addDrawingButton.addEventListener('click', async () => {
    clearError(itemsError);
    const copies = Number(copiesInput.value);
    if (!Number.isInteger(copies) || copies < 1 || copies > MAX_COPIES) {
      showMessage(itemsError, 'Could not add the drawing', `copies must be a whole number from 1 to ${MAX_COPIES}`, copiesInput);
      return;
    }
    if (pad.isEmpty) {
      showMessage(itemsError, 'Could not add the drawing', 'the canvas is empty, so draw a digit first');
      return;
    }
    drawingsAdded++;
    const name = `drawing-${drawingsAdded}.png`;
    // Disabled until the PNG is ready, so that drawings enter the order in the order they were added.
    addDrawingButton.disabled = true;
    try {
      basket.add(name, await pad.takePng(), copies);
    } finally {
      addDrawingButton.disabled = false;
    }
    renderBasket(`Added drawing ${drawingsAdded}, and the canvas is clear for the next one.`);
  });

  filesInput.addEventListener('change', () => {
    clearError(itemsError);
    const files = Array.from(filesInput.files ?? []);
    for (const file of files) basket.add(file.name, file, 1);
    filesInput.value = '';
    renderBasket(files.length === 1 ? `Added ${files[0].name}.` : `Added ${countOf(files.length, 'file')}.`);
  });

  noteInput.addEventListener('input', () => {
    idempotencyKey = null;
  });

  emptyButton.addEventListener('click', () => {
    basket.clear();
    renderBasket();
  });

  placeButton.addEventListener('click', async () => {
    clearError(orderError);
    const session = sessions.session;
    if (!session) {
      showMessage(orderError, 'Could not place the order', 'orders belong to a user: sign up at the top of the page first');
      return;
    }

    placeButton.disabled = true;
    idempotencyKey ??= randomKey();
    try {
      // An empty basket is sent too, and the service's response states what an order needs.
      const response = await callApi<Order | QueuedOrder>('POST', '/orders', {
        form: basket.toFormData(noteInput.value.trim()),
        token: session.token,
        headers: { 'Idempotency-Key': idempotencyKey },
      });
      basket.clear();
      noteInput.value = '';
      renderBasket();
      onOrdersChanged();

      if (response.status === 202) {
        const queued = response.body as QueuedOrder;
        orderView.replaceChildren();
        // Not awaited: another order can be collected and placed while this one runs.
        void follow(response.location ?? `/tasks/${queued.id}`, queued.orderId, session.token);
        // Keyboard users land on the next action; the progress is announced by its live region.
        cancelButton.focus();
      } else {
        stopFollowing();
        taskBox.hidden = true;
        renderOrder(orderView, response.body as Order).focus();
      }
    } catch (error) {
      showError(orderError, 'Could not place the order', error);
    } finally {
      placeButton.disabled = false;
    }
  });

  cancelButton.addEventListener('click', async () => {
    clearError(cancelError);
    const session = sessions.session;
    if (!following || !session) return;

    const { orderId } = following;
    try {
      const changes: Schema<'OrderChanges'> = { status: 'cancelled' };
      const { body: order } = await callApi<Order>('PATCH', `/orders/${orderId}`, { json: changes, token: session.token });
      stopFollowing();
      taskStatus.textContent = `${TASK_STATUS_TEXT.cancelled}.`;
      renderOrder(orderView, order).focus();
      onOrdersChanged();
    } catch (error) {
      // Usually 409: the task finished first. Following goes on and shows the finished order.
      showError(cancelError, 'Could not cancel the order', error);
    }
  });

  sessions.onChange(() => {
    // Orders belong to one user: nothing of the last user's stays on screen.
    stopFollowing();
    taskBox.hidden = true;
    orderView.replaceChildren();
    clearError(orderError);
  });

  renderBasket();

  return {
    async openOrder(orderId: string) {
      clearError(orderError);
      const session = sessions.session;
      if (!session) return;
      try {
        const { order, heading } = await showOrder(orderId, session.token);
        heading.focus();
        if (order.status === 'pending' && order.taskId !== null) {
          await follow(`/tasks/${order.taskId}`, order.id, session.token);
        } else if (following?.orderId !== order.id) {
          stopFollowing();
          taskBox.hidden = true;
        }
      } catch (error) {
        showError(orderError, 'Could not open the order', error);
      }
    },
  };
}

// crypto.randomUUID exists only in secure contexts (HTTPS or localhost), but getRandomValues exists everywhere.
function randomKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('');
}
