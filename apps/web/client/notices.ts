import { ERRORS } from '@chat/protocol';
import { ApiError } from './api.ts';
import { $ } from './dom.ts';
import type { Page } from './store.ts';

/** The page chrome that reports: the connection status and the toast for errors. */

const TOAST_SHOWN_MS = 6000;

export function setStatus(state: 'online' | 'connecting' | 'offline', text: string): void {
  const status = $('status');
  status.dataset.state = state;
  status.textContent = text;
}

export function toast(page: Page, message: string): void {
  const box = $('toast');
  box.textContent = message;
  box.hidden = false;
  clearTimeout(page.store.state.toastTimer);
  page.store.setToastTimer(
    window.setTimeout(() => {
      box.hidden = true;
    }, TOAST_SHOWN_MS),
  );
}

export function showError(page: Page, error: unknown): void {
  toast(page, error instanceof ApiError ? error.message : ERRORS.INTERNAL.message);
}
