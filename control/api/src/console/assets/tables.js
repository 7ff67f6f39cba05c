// The console's data tables: sorting, search and paging from TanStack Table's table-core (vendored,
// headless: it computes the row models, this module renders them). Cells are built with h(), so every
// value is text; the library writes no markup and no inline style (the CSP allows neither).
'use strict';

import { h, loadScript } from './dom.js';

const LIBRARY = '/ui/assets/vendor/table-core.umd.min.js';

/** table-core, loaded on the first table (the sign-in page does not fetch it). */
export async function tableCore() {
  await loadScript(LIBRARY);
  if (!window.TableCore) throw new Error('table-core did not load');
  return window.TableCore;
}

/**
 * A sortable, searchable (and optionally paged) table.
 *
 * columns: [{ id, header, value: (row) => sort/search value, cell: (row) => Node | text (default: value),
 *             class, sortDescFirst, sortable (default true) }]
 * options: { id, sorting: [{ id, desc }], onSorting(sorting), rowAttrs(row, index), pageSize, empty }
 * Returns { el, setData(rows), setSearch(text), rows() (the rows as shown, in order, every page), render() }.
 */
export async function dataTable(columns, options = {}) {
  const TC = await tableCore();
  const el = h('table', { id: options.id, class: 'data-table' });
  const wrap = h('div', { class: 'data-table-wrap' }, el);
  const pager = h('div', { class: 'pager' });
  if (options.pageSize) wrap.append(pager);
  const text = (v) => (v === undefined || v === null ? '' : String(v)).toLowerCase();
  const defs = columns.map((c) => ({
    id: c.id,
    header: c.header,
    accessorFn: c.value || (() => ''),
    enableSorting: c.sortable !== false,
    sortDescFirst: !!c.sortDescFirst,
    sortingFn: 'basic',
    sortUndefined: 'last',
    meta: c,
  }));
  const models = {
    getCoreRowModel: TC.getCoreRowModel(),
    getSortedRowModel: TC.getSortedRowModel(),
    getFilteredRowModel: TC.getFilteredRowModel(),
  };
  if (options.pageSize) models.getPaginationRowModel = TC.getPaginationRowModel();
  const table = TC.createTable({
    data: [],
    columns: defs,
    ...models,
    globalFilterFn: (row, columnId, q) => text(row.getValue(columnId)).includes(text(q)),
    getColumnCanGlobalFilter: () => true,
    state: {},
    onStateChange: () => {},
    renderFallbackValue: null,
  });
  let state = {
    ...table.initialState,
    sorting: options.sorting || [],
    globalFilter: '',
    pagination: { pageIndex: 0, pageSize: options.pageSize || 1e9 },
  };
  const setState = (updater) => {
    const before = state.sorting;
    state = TC.functionalUpdate(updater, state);
    table.setOptions((prev) => ({ ...prev, state }));
    if (state.sorting !== before && options.onSorting) options.onSorting(state.sorting);
    render();
  };
  table.setOptions((prev) => ({ ...prev, state, onStateChange: setState }));

  function render() {
    const head = table.getHeaderGroups().map((g) => h('tr', {}, g.headers.map((hd) => {
      const col = hd.column;
      const sorted = col.getIsSorted();
      return h('th', {
        'data-sort': col.id,
        class: [col.getCanSort() ? 'sortable' : '', sorted ? 'sorted' : '', sorted === 'asc' ? 'asc' : '', /\bnum\b/.test(col.columnDef.meta.class || '') ? 'num' : ''].filter(Boolean).join(' '),
        'aria-sort': sorted ? (sorted === 'asc' ? 'ascending' : 'descending') : undefined,
        onclick: col.getCanSort() ? col.getToggleSortingHandler() : undefined,
      }, col.columnDef.header);
    })));
    const rows = table.getRowModel().rows;
    const offset = options.pageSize ? state.pagination.pageIndex * state.pagination.pageSize : 0;
    const body = rows.map((r, i) => h('tr', options.rowAttrs ? options.rowAttrs(r.original, offset + i) : {},
      r.getVisibleCells().map((cell) => {
        const c = cell.column.columnDef.meta;
        const v = c.cell ? c.cell(r.original) : cell.getValue();
        return h('td', { class: c.class }, v === undefined || v === null || v === '' ? '—' : v);
      })));
    el.replaceChildren(h('thead', {}, head), h('tbody', {}, body.length ? body
      : h('tr', { class: 'empty' }, h('td', { colspan: columns.length, class: 'muted' }, options.empty || 'Nothing to show.'))));
    if (options.pageSize) {
      const n = table.getPageCount();
      const total = table.getFilteredRowModel().rows.length;
      pager.replaceChildren(
        h('button', { type: 'button', class: 'prev', disabled: !table.getCanPreviousPage(), onclick: () => table.previousPage() }, '‹ Previous'),
        h('span', { class: 'muted page' }, ` page ${n ? state.pagination.pageIndex + 1 : 0} of ${n} (${total} rows) `),
        h('button', { type: 'button', class: 'next', disabled: !table.getCanNextPage(), onclick: () => table.nextPage() }, 'Next ›'));
    }
  }
  render();
  return {
    el: options.pageSize ? wrap : el,
    table: el,
    setData(data) { table.setOptions((prev) => ({ ...prev, data })); render(); },
    setSearch(q) { table.setGlobalFilter(q); },
    rows() { return table.getPrePaginationRowModel().rows.map((r) => r.original); },
    render,
  };
}
