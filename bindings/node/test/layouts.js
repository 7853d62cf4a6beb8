'use strict';
// Prints what the binding declares, for bindings/check_layouts.py to
// compare with the C compiler: each struct's size and field offsets as
// koffi lays them out, each function's and callback type's parameter and
// result kinds and sizes, and each constant.
//
//   node test/layouts.js [libveltix path]
const native = require('../lib/native');

const { koffi } = native;
const api = native.load(process.argv[2]);

const KINDS = {
  Void: 'v', Bool: 'b', Int8: 'i', Int16: 'i', Int32: 'i', Int64: 'i', UInt8: 'u', UInt16: 'u', UInt32: 'u',
  UInt64: 'u', Float32: 'f', Float64: 'f', String: 'p', Pointer: 'p', Callback: 'p',
};

function shape(type, parameterName) {
  const info = koffi.introspect(type);
  if (info.primitive === 'Void') return 'v0';
  // user_data is an intptr_t here, and a `void *` in C (see lib/native.js).
  if (parameterName === 'user_data') return `p${info.size}`;
  const kind = KINDS[info.primitive.replace(/S$/, '')];
  if (!kind) throw new Error(`no kind for ${info.name} (${info.primitive})`);
  return `${kind}${info.size}`;
}

for (const type of Object.values(native.types)) {
  const info = koffi.introspect(type);
  console.log(`${info.name} ${info.size}`);
  for (const member of Object.values(info.members)) console.log(`${info.name}.${member.name} ${member.offset}`);
}
for (const declaration of native.functions) {
  const { name, params: declared } = parse(declaration);
  const fn = api[name];
  const params = fn.info.arguments.map((type, i) => shape(type, declared[i].name));
  console.log(`fn ${fn.info.name}(${params.join(',')})->${shape(fn.info.result)}`);
}
// A declaration's name, and its parameters' types and names.
function parse(declaration) {
  const [, result, name, list] = declaration.match(/^(.*?)\s*\b(veltix_\w+)\((.*)\)$/);
  const params = list === 'void' ? [] : list.split(',').map((param) => {
    const [, type, paramName] = param.trim().match(/^(?:_Out_ |_Inout_ )?(.*?)\s*\b(\w+)$/);
    return { type, name: paramName };
  });
  return { result, name, params };
}

for (const declaration of Object.values(native.callbackDeclarations)) {
  const { result, name, params } = parse(declaration);
  console.log(`cb ${name}(${params.map((p) => shape(p.type, p.name)).join(',')})->${shape(result)}`);
}
for (const [name, value] of Object.entries(native.constants)) console.log(`const ${name} ${value}`);
