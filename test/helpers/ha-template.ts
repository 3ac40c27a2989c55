/**
 * The few pieces of Home Assistant's Jinja a button's command_template may use, evaluated the way HA
 * does (homeassistant/components/mqtt/models.py MqttCommandTemplate.async_render: variables `value`,
 * `entity_id`, `name`; helpers/template/extensions/datetime.py: `now()` a datetime, `as_timestamp()`
 * float seconds; Jinja's `int` filter truncates). Anything else throws, so a template HA could not
 * render the same way fails the test instead of passing it by accident.
 */

type Value = number | string | { datetimeMs: number };

export interface TemplateVars {
  value: string;
  /** HA's clock at the press. */
  nowMs: number;
  entity_id?: string;
  name?: string;
}

export function renderCommandTemplate(template: string, vars: TemplateVars): string {
  if (/\{%|\{#/.test(template)) throw new Error('statements and comments are outside the subset');
  return template.replace(/\{\{(.*?)\}\}/gs, (_m, expr: string) => String(show(evaluate(expr, vars))));
}

function show(v: Value): string | number {
  if (typeof v === 'object') throw new Error('a datetime would render as text, not a number');
  return v;
}

function evaluate(src: string, vars: TemplateVars): Value {
  const tokens = src.match(/\s*(\d+(?:\.\d+)?|[A-Za-z_]\w*|'[^']*'|[()*|,])/gy);
  if (!tokens || tokens.join('').trim() !== src.trim()) throw new Error(`cannot read {{${src}}}`);
  const t = tokens.map((x) => x.trim());
  let i = 0;
  const peek = () => t[i];
  const take = (want?: string) => {
    const tok = t[i++];
    if (tok === undefined || (want !== undefined && tok !== want))
      throw new Error(`expected ${want ?? 'more'} in {{${src}}}`);
    return tok;
  };
  const num = (v: Value): number => {
    if (typeof v !== 'number') throw new Error(`not a number in {{${src}}}`);
    return v;
  };
  const primary = (): Value => {
    const tok = take();
    if (tok === '(') {
      const v = filtered();
      take(')');
      return v;
    }
    if (/^\d/.test(tok)) return Number(tok);
    if (tok.startsWith("'")) return tok.slice(1, -1);
    if (peek() === '(') {
      take('(');
      const args: Value[] = [];
      while (peek() !== ')') {
        args.push(filtered());
        if (peek() === ',') take(',');
      }
      take(')');
      if (tok === 'now' && args.length === 0) return { datetimeMs: vars.nowMs };
      const [arg] = args;
      if (tok === 'as_timestamp' && args.length === 1 && typeof arg === 'object')
        return arg.datetimeMs / 1000;
      throw new Error(`${tok}() is outside the subset`);
    }
    const known: Record<string, string | undefined> = {
      value: vars.value,
      entity_id: vars.entity_id,
      name: vars.name,
    };
    const v = known[tok];
    if (v === undefined) throw new Error(`"${tok}" is not a variable of a command_template`);
    return v;
  };
  const product = (): Value => {
    let v = primary();
    while (peek() === '*') {
      take('*');
      v = num(v) * num(primary());
    }
    return v;
  };
  const filtered = (): Value => {
    let v = product();
    while (peek() === '|') {
      take('|');
      const f = take();
      if (f !== 'int') throw new Error(`filter ${f} is outside the subset`);
      v = Math.trunc(num(v));
    }
    return v;
  };
  const v = filtered();
  if (i !== t.length) throw new Error(`unread tokens in {{${src}}}`);
  return v;
}
