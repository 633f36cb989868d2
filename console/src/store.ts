/**
 * A value that components follow: set it and every subscriber renders
 * again. The console's few pieces of global state (who is signed in, the
 * current location) are stores.
 */
import { useEffect, useState } from 'preact/hooks';

/** A value with subscribers. */
export interface Store<T> {
  get(): T;
  set(value: T): void;
  /** Calls `listener` after every set; returns the unsubscribe. */
  subscribe(listener: (value: T) => void): () => void;
}

/** A store holding `initial`. */
export function createStore<T>(initial: T): Store<T> {
  let value = initial;
  const listeners = new Set<(value: T) => void>();
  return {
    get: () => value,
    set(next) {
      value = next;
      for (const listener of [...listeners]) listener(next);
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}

/** The store's value, rendering the component again when it changes. */
export function useStore<T>(store: Store<T>): T {
  const [value, setValue] = useState(store.get());
  useEffect(() => {
    setValue(store.get());
    return store.subscribe(setValue);
  }, [store]);
  return value;
}
