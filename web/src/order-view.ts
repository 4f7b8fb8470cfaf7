import type { Schema } from './api.js';
import { countOf, createElement, formatMoney, formatPercent, formatTime } from './dom.js';

// Rows shown before a "Show all" button, so that an order of 1000 items does not make the page 30,000 px tall.
const ROWS_SHOWN = 50;

/** Money in integer minor units of `currency` (cents for USD). */
export type Bill = Schema<'Bill'>;

/** One item of an order, as GET /orders/{id} returns it. */
export type OrderItem = Schema<'Item'>;

/** An order, as GET /orders/{id} returns it. */
export type Order = Schema<'Order'>;

export type OrderStatus = Order['status'];

/** An order in the list of GET /orders: without its items. */
export type OrderSummary = Schema<'OrderSummary'>;

/** The 202 body of an order that became a background task. */
export type QueuedOrder = Schema<'OrderTaskAccepted'>;

/** Describes the bill in words, such as "3 items at $0.25: $0.75". */
export function describeBill(bill: Bill): string {
  return `${countOf(bill.items, 'item')} at ${formatMoney(bill.unitPrice, bill.currency)}: ${formatMoney(bill.total, bill.currency)}`;
}

/** Describes an order in one line for the list of orders. */
export function describeOrderSummary(order: OrderSummary): string {
  return `${formatTime(order.createdAt)}: ${countOf(order.itemCount, 'item')}, ${order.status}, ${formatMoney(order.bill.total, order.bill.currency)}`;
}

/**
 * Shows an order: its status, a table with each item's predicted digit and confidence (or why it
 * failed), and the bill. The heading can take focus, so that a page that opens an order can move
 * keyboard and screen reader users to it.
 */
export function renderOrder(container: HTMLElement, order: Order): HTMLElement {
  const heading = createElement('h3', { text: `Order ${order.id.slice(0, 8)}: ${order.status}` });
  heading.tabIndex = -1;
  const parts: HTMLElement[] = [heading];

  const placed = createElement('p', { className: 'help', text: `Placed ${formatTime(order.createdAt)}. Order id ${order.id}.` });
  parts.push(placed);
  if (order.note) parts.push(createElement('p', { text: `Note: ${order.note}` }));

  parts.push(createElement('p', { className: 'item-counts', text: describeItemCounts(order.items) }));

  const table = createElement('table');
  const caption = createElement('caption', { className: 'visually-hidden', text: 'Prediction of each item' });
  const head = createElement('thead');
  const headRow = createElement('tr');
  for (const title of ['Item', 'Status', 'Digit', 'Confidence']) {
    const cell = createElement('th', { text: title });
    cell.scope = 'col';
    headRow.append(cell);
  }
  head.append(headRow);
  const body = createElement('tbody');
  for (const item of order.items.slice(0, ROWS_SHOWN)) body.append(renderItemRow(item));
  table.append(caption, head, body);
  parts.push(table);

  if (order.items.length > ROWS_SHOWN) {
    const showAll = createElement('button', { text: `Show all ${order.items.length} items` });
    showAll.type = 'button';
    showAll.addEventListener('click', () => {
      for (const item of order.items.slice(ROWS_SHOWN)) body.append(renderItemRow(item));
      showAll.remove();
    });
    parts.push(showAll);
  }

  parts.push(createElement('p', { className: 'bill', text: `Bill: ${describeBill(order.bill)}` }));
  if (order.status !== 'completed') {
    parts.push(createElement('p', { className: 'help', text: 'Only classified items of a completed order are billed.' }));
  }

  container.replaceChildren(...parts);
  return heading;
}

// Counts items by status, such as "1000 items: 70 classified, 930 pending."
function describeItemCounts(items: OrderItem[]): string {
  const counts = new Map<OrderItem['status'], number>();
  for (const item of items) counts.set(item.status, (counts.get(item.status) ?? 0) + 1);
  const parts = [...counts].map(([status, count]) => `${count} ${status}`);
  return `${countOf(items.length, 'item')}${parts.length > 0 ? `: ${parts.join(', ')}` : ''}.`;
}

function renderItemRow(item: OrderItem): HTMLTableRowElement {
  const row = createElement('tr');
  const digit = item.status === 'classified' ? item.label ?? '' : '';
  let confidence = '';
  if (item.status === 'classified' && item.confidence !== null) confidence = formatPercent(item.confidence);
  else if (item.status === 'failed') confidence = item.error?.message ?? 'failed';
  for (const text of [String(item.index + 1), item.status, digit, confidence]) row.append(createElement('td', { text }));
  return row;
}
