# Per-cell minimum across benchmark runs (least-contended estimate on a shared box), with ratio to each message's baseline.
import json,sys
runs=[json.load(open(f))['results'] for f in sys.argv[1:]]
for msg in runs[0]:
    role='request' if 'Request' in msg else 'response'
    base_key='ts-proto decode' if role=='request' else 'ts-proto encode'
    cells={op:min(r[msg][op] for r in runs) for op in runs[0][msg]}
    spread={op:max(r[msg][op] for r in runs)/cells[op] for op in cells}
    b=cells[base_key]
    print(f"\n{msg} [{role}; baseline {base_key}]")
    for op,v in cells.items(): print(f"  {op:50s} {v/1000:9.2f} µs  x{v/b:6.2f}   (max/min across runs {spread[op]:.2f})")
