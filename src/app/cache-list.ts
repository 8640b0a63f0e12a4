import { deleteCachedModel, listCachedModels } from '../storage/cache.ts';
import { fileName } from './catalog.ts';
import { formatBytes } from './format.ts';

/** The models stored in this browser's IndexedDB cache, each with its size and a Delete button. */

export interface CacheListElements {
  list: HTMLUListElement;
  /** Shown when nothing is stored, or when this browser cannot store models. */
  empty: HTMLElement;
  /** Takes focus when the last Delete button goes away. */
  heading: HTMLElement;
}

export async function showCachedModels(el: CacheListElements): Promise<void> {
  let models;
  try {
    models = await listCachedModels();
  } catch (error) {
    el.empty.textContent = `This browser cannot store models (${(error as Error).message}); they load from the network each time.`;
    el.empty.hidden = false;
    return;
  }
  el.empty.hidden = models.length > 0;
  el.list.replaceChildren(...models.map(({ id, size }) => {
    const item = document.createElement('li');
    item.dataset.testid = 'cache-item';
    item.dataset.id = id;
    const name = document.createElement('span');
    name.className = 'cache-name';
    name.textContent = fileName(id);
    name.title = id;
    const bytes = document.createElement('span');
    bytes.className = 'hint';
    bytes.textContent = formatBytes(size);
    const remove = document.createElement('button');
    remove.type = 'button';
    remove.textContent = 'Delete';
    remove.setAttribute('aria-label', `Delete ${fileName(id)} (${formatBytes(size)}) from this browser`);
    remove.addEventListener('click', async () => {
      remove.disabled = true;
      await deleteCachedModel(id);
      await showCachedModels(el);
      // The button is gone: keep focus in the list, or on its heading when it is empty.
      (el.list.querySelector('button') ?? el.heading).focus();
    });
    item.append(name, ' ', bytes, ' ', remove);
    return item;
  }));
}
