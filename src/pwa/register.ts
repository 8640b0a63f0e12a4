/// <reference types="vite-plugin-pwa/client" />
/**
 * Registers the app's service worker (production builds; a no-op under the dev server) and offers
 * a new version with a reload prompt: `[data-testid=update]`, with a Reload button that activates
 * the waiting worker and reloads. `<html data-offline-ready>` is set once the app shell is cached.
 */
import { registerSW } from 'virtual:pwa-register';

const BANNER_CSS = `
.lantern-update {
  position: fixed; left: 50%; bottom: 16px; transform: translateX(-50%); z-index: 1000;
  display: flex; gap: 12px; align-items: center; padding: 10px 14px; border-radius: 10px;
  background: #1b1f24; color: #fff; font: 14px/1.4 system-ui, sans-serif; box-shadow: 0 6px 20px rgb(0 0 0 / 0.3);
}
.lantern-update button { font: inherit; padding: 4px 12px; border-radius: 6px; border: 0; background: #f59e0b; color: #1b1f24; cursor: pointer; }
.lantern-update button.dismiss { background: transparent; color: #fff; }
`;

const updateServiceWorker = registerSW({
  onNeedRefresh: showUpdateBanner,
  onOfflineReady() {
    document.documentElement.dataset.offlineReady = '';
  },
  onRegisterError(error: unknown) {
    // The app works without a service worker (no offline start); say why in the console only.
    console.warn('Lantern: the service worker did not register, so the app will not open offline.', error);
  },
});

function showUpdateBanner(): void {
  if (document.querySelector('[data-testid=update]')) return;
  const style = document.createElement('style');
  style.textContent = BANNER_CSS;
  const banner = document.createElement('div');
  banner.className = 'lantern-update';
  banner.dataset.testid = 'update';
  banner.setAttribute('role', 'alert');
  const text = document.createElement('span');
  text.textContent = 'A new version of Lantern is ready.';
  const reload = document.createElement('button');
  reload.type = 'button';
  reload.textContent = 'Reload';
  // Activates the waiting service worker, which then reloads this page.
  reload.addEventListener('click', () => void updateServiceWorker(true));
  const dismiss = document.createElement('button');
  dismiss.type = 'button';
  dismiss.className = 'dismiss';
  dismiss.textContent = 'Later';
  dismiss.addEventListener('click', () => banner.remove());
  banner.append(text, reload, dismiss);
  document.head.append(style);
  document.body.append(banner);
}
