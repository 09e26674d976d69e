#!/usr/bin/env python3
"""Whole fergc commands on mutated files, under an address-space limit and a timeout.

    Tools/fuzz/commands.py KIND [--fergc BIN] [--count N] [--seconds S] [--seed S] [--work DIR]
                                [--timeout SECONDS] [--as BYTES] [BASE ...]

KIND is what gets mutated:
  plan         .plan files, rebuilt with valid CRC-32s after the mutation (so the checks past
               the checksums see them): one to three JSON leaves of a section set to extremes,
               swapped, dropped or duplicated (85%), 8-byte words of PARM overwritten (10%), or
               another format version (5%); then inspect, explain, predict, eval, export,
               ensemble, bench, compile --weights (once, and twice: a soup of
               the mutant with itself) or train --init on the mutant.
  run          run directories: the checkpoint's record and stored model text mutated, its
               tensors truncated, doubled, retyped, dropped, reshaped or given a NaN; then
               train --resume, report, eval, compile --weights (once and twice) or train --init.
  predictions  the CSVs `fergc eval --predictions` writes: fields, lines and truncations;
               then ensemble --predictions (with and without --combinations).

Without BASE files the tool makes its own from Models/tiny.graph and the embedded sample data
with the fergc it tests (an inference plan, --tta flip, a training plan, f16 weights and an
ensemble; a mid-epoch and an after-epoch run directory; two models' predictions).

A failure is a signal (a trap, SIGSEGV, an abort in the allocator), a Swift runtime failure
in stderr, or a command still running after --timeout. Each failing input is kept in
WORK/fail-N (fail-N.plan for a plan) with the command in WORK/fail-N.txt. A refusal with an error and a non-zero status
is the expected outcome, not a failure. Exits 1 when anything failed, 2 on a usage error.
With --seconds the tool stops starting mutants once that long has passed (Tools/fuzz/nightly.sh
runs it so, as the targets commands-plan, commands-run and commands-predictions).
Needs only Python 3's standard library; `--fergc` defaults to .build/release/fergc.
"""
import argparse, ast, copy, json, os, random, re, resource, shutil, struct, subprocess, sys, tempfile, time, zipfile, zlib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLE = os.path.join(ROOT, 'Data', 'fer2013-sample.csv.gz')
TINY = os.path.join(ROOT, 'Models', 'tiny.graph')
EXTREMES = [0, -1, 1, 2, 3, 7, 48, 255, 65535, 65536, 2**31 - 1, 2**31, 2**32 + 1, 2**40, 2**53, 2**62,
            2**63 - 1, -2**31, 1e308, -1e308, 0.5, 1e-300]


# ---- .plan sections (docs/plan-format.md): the header, then 64-byte aligned tagged sections

def plan_parse(b):
    if b[:8] != b'FERGCPLN':
        raise ValueError('not a .plan file (magic)')
    version, plen = struct.unpack_from('<II', b, 8)
    producer = b[16:16 + plen]
    pos = (16 + plen + 7) // 8 * 8
    sections = []
    while True:
        while (pos + 16) % 64:
            pos += 1
        if pos + 16 > len(b):
            raise ValueError('no END section')
        tag = b[pos:pos + 4]
        length, _ = struct.unpack_from('<QI', b, pos + 4)
        if tag == b'END ':
            return version, producer, sections
        sections.append([tag, b[pos + 16:pos + 16 + length]])
        pos += 16 + length


def plan_build(version, producer, sections):
    out = bytearray(b'FERGCPLN' + struct.pack('<II', version, len(producer)) + producer)
    while len(out) % 8:
        out.append(0)
    for tag, payload in sections + [[b'END ', None]]:
        while (len(out) + 16) % 64:
            out.append(0)
        if payload is None:  # END holds the CRC of everything before it
            payload = struct.pack('<I', zlib.crc32(bytes(out)) & 0xffffffff)
        out += tag + struct.pack('<QI', len(payload), zlib.crc32(payload) & 0xffffffff) + payload
    return bytes(out)


def leaves(o, path=()):
    if isinstance(o, dict):
        for k, v in list(o.items()):
            yield from leaves(v, path + (k,))
    elif isinstance(o, list):
        for i, v in enumerate(o):
            yield from leaves(v, path + (i,))
    yield path, o


def set_at(o, path, value):
    for k in path[:-1]:
        o = o[k]
    o[path[-1]] = value


def mutate_json(rng, j, extra_strings=()):
    found = [l for l in leaves(j) if l[0]]
    if not found:
        return j
    strings = [v for _, v in found if isinstance(v, str) and len(v) < 200] + list(extra_strings)
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        path, v = rng.choice(found)
        try:
            if isinstance(v, bool) or rng.random() < 0.05:
                set_at(j, path, (not v) if isinstance(v, bool) else None)
            elif isinstance(v, (int, float)):
                set_at(j, path, rng.choice(EXTREMES) if rng.random() < 0.8 else v + rng.choice([-1, 1]))
            elif isinstance(v, str):
                set_at(j, path, rng.choice(strings + ['', 'x' * 5000]))
            elif isinstance(v, list):
                if v and rng.random() < 0.5:
                    v.pop(rng.randrange(len(v)))
                elif v:
                    v.insert(rng.randrange(len(v) + 1), copy.deepcopy(rng.choice(v)))
                else:
                    v.append(0)
            elif isinstance(v, dict) and v:
                k = rng.choice(list(v))
                if rng.random() < 0.5:
                    del v[k]
                else:
                    v[k + '_'] = copy.deepcopy(v[k])
        except (KeyError, IndexError, TypeError):
            pass  # an earlier mutation removed the path
    return j


def plan_mutant(rng, b):
    version, producer, sections = plan_parse(b)
    r = rng.random()
    json_sections = [i for i, s in enumerate(sections) if s[0] != b'PARM']
    parm = [i for i, s in enumerate(sections) if s[0] == b'PARM']
    if r < 0.85 and json_sections:
        i = rng.choice(json_sections)
        j = json.loads(sections[i][1])
        sections[i][1] = json.dumps(mutate_json(rng, j, ['f16', 'f32', 'bf16', 'i32'])).encode()
    elif r < 0.95 and parm:
        p = bytearray(sections[parm[0]][1])
        for _ in range(rng.randint(1, 4)):
            if not p:
                break
            o = rng.randrange(min(len(p), 256) if rng.random() < 0.7 else len(p))
            word = struct.pack('<Q', rng.choice(EXTREMES[:17]) & 0xffffffffffffffff)
            p[o:o + 8] = word[:len(p[o:o + 8])]
        sections[parm[0]][1] = bytes(p)
    else:
        version = rng.choice([0x10000, 0x10001, 0x10002, 0x10003, 0x1ffff, version + 1])
    return plan_build(version, producer, sections)


# ---- .npz checkpoints (stored .npy members), read and written without NumPy

NPY_FORMATS = {'<f4': 'f', '<f8': 'd', '<f2': 'e', '<i4': 'i', '<i8': 'q', '|u1': 'B', '<u1': 'B', '<u2': 'H'}


def npy_read(data):
    if data[:6] != b'\x93NUMPY':
        raise ValueError('not an .npy member')
    major = data[6]
    hlen = struct.unpack_from('<H' if major == 1 else '<I', data, 8)[0]
    start = 10 if major == 1 else 12
    header = ast.literal_eval(data[start:start + hlen].decode('latin1'))
    return header['descr'], tuple(header['shape']), data[start + hlen:]


def npy_write(descr, shape, raw):
    shape_text = '(%s)' % ''.join('%d,' % d for d in shape) if len(shape) == 1 else '(%s)' % ', '.join(map(str, shape))
    header = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape_text)
    pad = 64 - (10 + len(header) + 1) % 64
    header = header + ' ' * (pad % 64) + '\n'
    return b'\x93NUMPY\x01\x00' + struct.pack('<H', len(header)) + header.encode('latin1') + raw


def npz_read(path):
    with zipfile.ZipFile(path) as z:
        return {n[:-4]: npy_read(z.read(n)) for n in z.namelist()}


def npz_write(path, arrays):
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_STORED) as z:
        for name, (descr, shape, raw) in arrays.items():
            z.writestr(name + '.npy', npy_write(descr, shape, raw))


def values(descr, raw):
    f = NPY_FORMATS[descr]
    n = len(raw) // struct.calcsize(f)
    return list(struct.unpack('<%d%s' % (n, f), raw[:n * struct.calcsize(f)]))


def pack(descr, vals):
    f = NPY_FORMATS[descr]
    out = []
    for v in vals:
        if f in 'fde':
            try:
                out.append(struct.pack('<' + f, float(v)))
            except OverflowError:
                out.append(struct.pack('<' + f, float('inf')))
        else:
            bits = struct.calcsize(f) * 8
            iv = int(v) if v == v and abs(v) != float('inf') else 0
            out.append(struct.pack('<' + f.lower(), iv % (1 << bits)))
    return b''.join(out)


def mutate_model_text(rng, text):
    lines = text.split('\n')
    i = rng.randrange(len(lines))
    r = rng.random()
    if r < 0.3:
        del lines[i]
    elif r < 0.5:
        lines.insert(i, lines[rng.randrange(len(lines))])
    else:
        numbers = list(re.finditer(r'\d+(\.\d+)?(e-?\d+)?', lines[i]))
        if numbers:
            m = rng.choice(numbers)
            lines[i] = lines[i][:m.start()] + str(rng.choice([0, 1, 3, 7, 65536, 2**31, 2**40, 10**30])) + lines[i][m.end():]
        else:
            lines[i] = lines[i][::-1]
    return '\n'.join(lines)


def run_mutant(rng, base, dst):
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(base, dst)
    arrays = npz_read(os.path.join(base, 'checkpoint-last.npz'))
    meta = json.loads(arrays['__meta__'][2])
    for _ in range(rng.choice([1, 1, 2, 3])):
        r = rng.random()
        if r < 0.45:
            mutate_json(rng, meta)
        elif r < 0.7 and isinstance(meta.get('modelIR'), str):
            meta['modelIR'] = mutate_model_text(rng, meta['modelIR'])
        else:
            names = [k for k in arrays if k != '__meta__' and arrays[k][0] in NPY_FORMATS]
            if not names:
                continue
            k = rng.choice(names)
            d, s, raw_k = arrays[k]
            size = struct.calcsize(NPY_FORMATS[d])
            count = len(raw_k) // size
            q = rng.random()
            if q < 0.25:
                cut = rng.randrange(count + 1)
                arrays[k] = (d, (cut,), raw_k[:cut * size])
            elif q < 0.4:
                to = rng.choice(['<f8', '<i4', '<f2', '|u1'])
                arrays[k] = (to, s, pack(to, values(d, raw_k)))
            elif q < 0.55:
                arrays[k] = (d, (2 * count,), raw_k + raw_k)
            elif q < 0.7:
                del arrays[k]
            elif q < 0.8:
                arrays[k] = (d, (count, 1), raw_k)
            else:
                vals = [float(v) for v in values(d, raw_k)]
                if vals:
                    vals[rng.randrange(len(vals))] = rng.choice([float('inf'), float('nan'), 1e38, -1e38])
                arrays[k] = ('<f4', s, pack('<f4', vals))
    record = json.dumps(meta).encode()
    arrays['__meta__'] = ('|u1', (len(record),), record)
    npz_write(os.path.join(dst, 'checkpoint-last.npz'), arrays)
    best = os.path.join(dst, 'checkpoint-best.npz')
    if os.path.exists(best) and rng.random() < 0.5:
        shutil.copy(os.path.join(dst, 'checkpoint-last.npz'), best)


# ---- --predictions CSVs

CSV_VALUES = ['', '-1', '0', '7', '1e308', 'nan', 'inf', '-inf', '9223372036854775808', '2147483648', '0x10',
              ' 1', '1 ', '"1"', '\u00e9', '\r', ',', '\x00', '1e-320', '0.5']


def csv_mutant(rng, lines):
    lines = list(lines)
    for _ in range(rng.choice([1, 1, 2, 4])):
        if not lines:
            break
        r = rng.random()
        i = rng.randrange(len(lines))
        if r < 0.5:
            f = lines[i].split(',')
            j = rng.randrange(len(f))
            f[j] = rng.choice(CSV_VALUES + f)
            if rng.random() < 0.2:
                f.insert(j, rng.choice(CSV_VALUES))
            if rng.random() < 0.2 and len(f) > 1:
                del f[j]
            lines[i] = ','.join(f)
        elif r < 0.65:
            del lines[i]
        elif r < 0.8:
            lines.insert(i, rng.choice(lines))
        elif r < 0.9:
            lines[i] = lines[i][:rng.randrange(len(lines[i]) + 1)]
        else:
            lines = lines[:i]
    return lines


# ---- running commands

class Runner:
    def __init__(self, fergc, timeout, address_space):
        self.fergc, self.timeout, self.address_space = fergc, timeout, address_space

    def limit(self):
        resource.setrlimit(resource.RLIMIT_AS, (self.address_space, self.address_space))

    def run(self, args):
        """(failed, outcome, detail): a signal, a Swift runtime failure or a timeout is a failure."""
        try:
            r = subprocess.run([self.fergc] + args, capture_output=True, text=True, errors='replace',
                               timeout=self.timeout, preexec_fn=self.limit, cwd=ROOT)
        except subprocess.TimeoutExpired:
            return True, 'timeout', 'still running after %g s' % self.timeout
        err = r.stderr
        if r.returncode < 0:
            return True, 'signal %d' % -r.returncode, first_line(err)
        for needle in ('Fatal error', 'runtime failure', 'Illegal instruction', 'Segmentation fault'):
            if needle in err:
                return True, 'status %d' % r.returncode, first_line(err, needle)
        return False, 'status %d' % r.returncode, ''

    def must(self, args, context='making the bases'):
        """Runs a command that has to succeed (no limits); exits 1 saying `context` if it does not."""
        r = subprocess.run([self.fergc] + args, capture_output=True, text=True, errors='replace', cwd=ROOT)
        if r.returncode != 0:
            sys.exit('commands.py: %s: fergc %s failed (%d): %s' % (context, ' '.join(args), r.returncode, r.stderr.strip()))


def first_line(text, needle=None):
    lines = [l for l in text.splitlines() if l.strip()]
    if needle:
        lines = [l for l in lines if needle in l] or lines
    return lines[0][:200] if lines else '(no stderr)'


def make_bases(kind, runner, work):
    d = os.path.join(work, 'bases')
    shutil.rmtree(d, ignore_errors=True)  # made afresh: a run directory refuses a second trainer
    os.makedirs(d)
    p = lambda name: os.path.join(d, name)
    if kind == 'plan':
        runner.must(['compile', TINY, '-o', p('tiny.plan')])
        runner.must(['compile', TINY, '--tta', 'flip', '-o', p('tta.plan')])
        runner.must(['compile', TINY, '--train', '--batch', '4', '--no-probe', '-o', p('train.plan')])
        runner.must(['compile', TINY, '--weights-dtype', 'f16', '-o', p('f16.plan')])
        runner.must(['ensemble', p('tiny.plan'), p('tta.plan'), '-o', p('ensemble.plan')])
        return [p(n) for n in ('tiny.plan', 'tta.plan', 'train.plan', 'f16.plan', 'ensemble.plan')]
    if kind == 'run':
        runner.must(['train', TINY, '--out', p('mid'), '--max-steps', '3', '--batch', '8'])
        runner.must(['train', TINY, '--out', p('epoch'), '--epochs', '1'])
        # Stopped inside a finish (the sample's 57 steps an epoch at batch 16: step 60 is the
        # finish's third), so mutants reach its record and its line of the model's IR.
        runner.must(['train', TINY, '--out', p('finish'), '--epochs', '1', '--max-steps', '60',
                     '--set', 'finish=finish(epochs=1, lr=0.001, augment=augment(hflip=true))'])
        return [p('mid'), p('epoch'), p('finish')]
    runner.must(['compile', TINY, '-o', p('a.plan')])
    runner.must(['compile', TINY, '--tta', 'flip', '-o', p('b.plan')])
    for n in ('a', 'b'):
        runner.must(['eval', p(n + '.plan'), '--data', SAMPLE, '--split', 'PublicTest', '--out', p('ev-' + n),
                     '--predictions', p(n + '.csv')])
    return [p('a.csv'), p('b.csv')]


def plan_commands(m, w):
    face = os.path.join(w, 'face.pgm')
    return [['inspect', m], ['explain', m], ['predict', m, face, '--detector', 'none', '--format', 'jsonl'],
            ['eval', m, '--data', SAMPLE, '--split', 'PublicTest', '--out', os.path.join(w, 'ev')],
            ['export', m, '-o', os.path.join(w, 'x.onnx')], ['ensemble', m, m, '-o', os.path.join(w, 'e.plan')],
            ['bench', m, '--runs', '5', '--batch', '1'],
            ['compile', TINY, '--weights', m, '--tta', 'flip', '-o', os.path.join(w, 'w.plan')],
            ['compile', TINY, '--weights', m, '--weights', m, '-o', os.path.join(w, 's.plan')],
            ['train', TINY, '--init', m, '--out', os.path.join(w, 'ti'), '--max-steps', '1']]


def run_model(d):
    """The model a run directory was trained from (its copy of it), else Models/tiny.graph."""
    m = os.path.join(d, 'model.graph')
    return m if os.path.isfile(m) else TINY


def run_commands(d):
    ck = os.path.join(d, 'checkpoint-last.npz')
    model = run_model(d)
    return [['train', '--resume', d, '--max-steps', '2'], ['report', d],
            ['eval', ck, '--data', SAMPLE, '--split', 'PublicTest', '--out', os.path.join(d, 'ev')],
            ['compile', model, '--weights', ck, '-o', os.path.join(d, 'x.plan')],
            ['compile', model, '--weights', ck, '--weights', ck, '-o', os.path.join(d, 's.plan')],
            ['train', model, '--init', ck, '--out', os.path.join(d, 'r2'), '--max-steps', '1']]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog='\n\n'.join(__doc__.split('\n\n')[1:]))
    ap.add_argument('kind', choices=['plan', 'run', 'predictions'])
    ap.add_argument('bases', nargs='*', help='files (or run directories) to mutate; made from Models/tiny.graph if none')
    ap.add_argument('--fergc', default=os.path.join(ROOT, '.build', 'release', 'fergc'), help='the binary under test')
    ap.add_argument('--count', type=int, help='mutants to run (default 1000, or no limit with --seconds)')
    ap.add_argument('--seconds', type=float, help='start no mutant once this many seconds have passed since the bases were made (default: no limit)')
    ap.add_argument('--seed', type=int, default=1, help='seed of the mutations (default 1): a run is reproducible')
    ap.add_argument('--work', help='where mutants and failures go (default: a new temporary directory)')
    ap.add_argument('--timeout', type=float, default=60, help='seconds a command may take (default 60)')
    ap.add_argument('--as', dest='address_space', type=int, default=4_000_000_000,
                    help='address-space limit of each command in bytes (default 4e9)')
    a = ap.parse_args()
    if not os.access(a.fergc, os.X_OK):
        ap.error('%s is not an executable fergc (build it: swift build -c release)' % a.fergc)
    if (a.count is not None and a.count < 0) or (a.seconds is not None and a.seconds <= 0) \
            or a.timeout <= 0 or a.address_space <= 0:
        ap.error('--count must be >= 0, --seconds, --timeout and --as > 0')
    if a.count is None and a.seconds is None:
        a.count = 1000
    work = os.path.abspath(a.work or tempfile.mkdtemp(prefix='fergc-commands-'))
    os.makedirs(work, exist_ok=True)
    runner = Runner(os.path.abspath(a.fergc), a.timeout, a.address_space)
    bases = [os.path.abspath(b) for b in a.bases] or make_bases(a.kind, runner, work)
    rng = random.Random(a.seed)

    base_bytes = {}
    for b in bases:
        if a.kind == 'run':
            if not os.path.isfile(os.path.join(b, 'checkpoint-last.npz')):
                ap.error('%s: not a run directory (no checkpoint-last.npz)' % b)
            # The tool's .npz reader and writer, with no mutation, must give a checkpoint
            # fergc still takes: otherwise every mutant would be refused for the writer's sake.
            same = os.path.join(work, 'unmutated.npz')
            npz_write(same, npz_read(os.path.join(b, 'checkpoint-last.npz')))
            runner.must(['compile', run_model(b), '--weights', same, '-o', os.path.join(work, 'unmutated.plan')],
                        '%s: its checkpoint rewritten (unmutated) by this tool is refused, so the tool is out of date' % b)
            continue
        if not os.path.isfile(b):
            ap.error('%s: no such file' % b)
        base_bytes[b] = open(b, 'rb').read()
        if a.kind == 'plan':
            try:
                if plan_build(*plan_parse(base_bytes[b])) != base_bytes[b]:
                    ap.error('%s: the tool\'s writer does not rebuild this plan byte for byte '
                             '(has the format changed? see docs/plan-format.md)' % b)
            except ValueError as e:
                ap.error('%s: %s' % (b, e))
    if a.kind == 'predictions' and len(bases) < 2:
        ap.error('predictions needs two or more CSVs')

    with open(os.path.join(work, 'face.pgm'), 'wb') as f:
        f.write(b'P5\n48 48\n255\n' + bytes(rng.randrange(256) for _ in range(48 * 48)))
    failures = 0
    outcomes = {}
    start = time.monotonic()  # the budget is the mutants' time, not the bases'
    budget = ('%d mutants' % a.count if a.count is not None else 'mutants') + \
        (' for at most %g s' % a.seconds if a.seconds is not None else '')
    print('commands.py: %s, %s, seed %d, %s; work %s' % (a.kind, budget, a.seed, runner.fergc, work), flush=True)
    n = 0
    while (a.count is None or n < a.count) and (a.seconds is None or time.monotonic() - start < a.seconds):
        if a.kind == 'plan':
            base = rng.choice(bases)
            target = os.path.join(work, 'mutant.plan')
            with open(target, 'wb') as f:
                f.write(plan_mutant(rng, base_bytes[base]))
            args = rng.choice(plan_commands(target, work))
        elif a.kind == 'run':
            base = rng.choice(bases)
            target = os.path.join(work, 'run')
            run_mutant(rng, base, target)
            args = rng.choice(run_commands(target))
        else:
            base = 'predictions'
            target = os.path.join(work, 'predictions')
            shutil.rmtree(target, ignore_errors=True)
            os.makedirs(target)
            files = []
            for i, b in enumerate(bases):
                lines = base_bytes[b].decode('utf-8', 'replace').split('\n')
                if rng.random() < 0.6:
                    lines = csv_mutant(rng, lines)
                files.append(os.path.join(target, '%d.csv' % i))
                with open(files[-1], 'w') as f:
                    f.write('\n'.join(lines))
            args = ['ensemble', '--predictions'] + files + (['--combinations'] if rng.random() < 0.5 else [])
        failed, outcome, detail = runner.run(args)
        what = outcome + (': ' + detail if detail else '')
        outcomes[(args[0], outcome)] = outcomes.get((args[0], outcome), 0) + 1
        if failed:
            failures += 1
            # Kept under its own extension (fergc tells a .plan from a .graph by it), with the
            # command that failed rewritten to name the kept copy.
            keep = os.path.join(work, 'fail-%d' % n) + os.path.splitext(target)[1]
            (shutil.copytree if os.path.isdir(target) else shutil.copy)(target, keep)
            with open(os.path.join(work, 'fail-%d.txt' % n), 'w') as f:
                f.write('fergc %s\n%s\nbase: %s\n' % (' '.join(args).replace(target, keep), what, base))
            print('FAIL %d: fergc %s: %s (kept in %s)' % (n, args[0], what, keep), flush=True)
        n += 1
        if n % 100 == 0:
            of = ' of %d' % a.count if a.count is not None else ''
            print('%d%s, %d failures, %.0f s' % (n, of, failures, time.monotonic() - start), file=sys.stderr, flush=True)
    # What the commands did with the mutants (status 0: accepted, as a mutation of a weight or
    # an unused field may well be; any other status: refused with an error).
    for (command, outcome), count in sorted(outcomes.items()):
        print('  %-9s %-11s %6d' % (command, outcome, count))
    print('commands.py: %s: %d mutants, %d failures (signals, runtime failures, timeouts) in %.0f s'
          % (a.kind, n, failures, time.monotonic() - start))
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
