/**
 * The kernel IR: what a compute kernel does, as data, between fusion and a
 * backend's code generator. Every kernel family (elementwise, reduce,
 * rowwise, gather, scatter-add, matmul) is built in it, and one renderer per
 * backend turns it into source (`backends/webgpu/wgsl/render.ts` writes WGSL).
 *
 * The model is WebGPU's, which is the smallest common one: a grid of
 * workgroups of invocations, storage buffers bound by index, workgroup-shared
 * arrays, barriers. A kernel body is a list of statements over typed
 * expressions; values are immutable `let`s unless declared `var`.
 *
 * This module only declares the types; `build.ts` has the constructors.
 *
 * @module
 */

/** A scalar element type. `bool` is never stored: buffers of bool hold u32 0/1. */
export type ScalarType = "f32" | "i32" | "u32" | "bool";

/** The type of a value: a scalar, or one of the two vectors kernels use (Threefry keys, matmul lanes). */
export type ValueType = ScalarType | "vec2u" | "vec4f";

/** Binary operators: arithmetic, comparison, logic and bit operations. */
export type BinaryOp =
  | "+"
  | "-"
  | "*"
  | "/"
  | "%"
  | "<"
  | "<="
  | ">"
  | ">="
  | "=="
  | "!="
  | "&&"
  | "||"
  | "&"
  | "|"
  | "^"
  | "<<"
  | ">>";

/** Built-in math functions, with WGSL's semantics (`inverseSqrt`, `fma(a, b, c) = a·b + c`). */
export type MathFunction =
  | "exp"
  | "log"
  | "sqrt"
  | "inverseSqrt"
  | "tanh"
  | "abs"
  | "max"
  | "min"
  | "clamp"
  | "pow"
  | "fma"
  | "floor"
  | "ceil"
  | "sin"
  | "cos";

/** Which invocation is running: WebGPU's built-in ids (`axis` 0, 1, 2 = x, y, z). */
export type InvocationId =
  | { readonly of: "workgroup"; readonly axis: 0 | 1 | 2 }
  | { readonly of: "numWorkgroups"; readonly axis: 0 | 1 | 2 }
  | { readonly of: "local"; readonly axis: 0 | 1 | 2 }
  | { readonly of: "localIndex" };

/** A typed expression. Every node carries its result type. */
export type Expr =
  | { readonly kind: "literal"; readonly type: ScalarType; readonly value: number }
  | { readonly kind: "ref"; readonly type: ValueType; readonly name: string }
  | { readonly kind: "id"; readonly type: "u32"; readonly id: InvocationId }
  | {
    readonly kind: "load";
    readonly type: ValueType;
    readonly array: string;
    readonly index: Expr;
  }
  | { readonly kind: "unary"; readonly type: ValueType; readonly op: "-" | "!"; readonly x: Expr }
  | {
    readonly kind: "binary";
    readonly type: ValueType;
    readonly op: BinaryOp;
    readonly a: Expr;
    readonly b: Expr;
  }
  | {
    readonly kind: "math";
    readonly type: ValueType;
    readonly fn: MathFunction;
    readonly args: readonly Expr[];
  }
  | {
    readonly kind: "call";
    readonly type: ValueType;
    readonly fn: KernelFunction;
    readonly args: readonly Expr[];
  }
  | {
    readonly kind: "select";
    readonly type: ValueType;
    readonly cond: Expr;
    readonly ifTrue: Expr;
    readonly ifFalse: Expr;
  }
  | { readonly kind: "convert"; readonly type: ScalarType; readonly x: Expr }
  | { readonly kind: "bitcast"; readonly type: ScalarType; readonly x: Expr }
  | { readonly kind: "vector"; readonly type: "vec2u" | "vec4f"; readonly parts: readonly Expr[] }
  | { readonly kind: "lane"; readonly type: ScalarType; readonly x: Expr; readonly lane: number };

/** A statement of a kernel or function body. */
export type Stmt =
  | { readonly kind: "let"; readonly name: string; readonly value: Expr }
  | {
    readonly kind: "var";
    readonly name: string;
    readonly type: ValueType;
    readonly init?: Expr;
  }
  | { readonly kind: "assign"; readonly name: string; readonly value: Expr }
  | {
    readonly kind: "store";
    readonly array: string;
    readonly index: Expr;
    readonly value: Expr;
  }
  | {
    /** `for (var name = from; name < to; name += step)`, u32 counter. */
    readonly kind: "loop";
    readonly name: string;
    readonly from: Expr;
    readonly to: Expr;
    readonly step: Expr;
    readonly body: readonly Stmt[];
  }
  | {
    readonly kind: "if";
    readonly cond: Expr;
    readonly then: readonly Stmt[];
    readonly otherwise?: readonly Stmt[];
  }
  | { readonly kind: "return"; readonly value?: Expr }
  | { readonly kind: "barrier" }
  | { readonly kind: "call"; readonly fn: KernelFunction; readonly args: readonly Expr[] }
  | {
    /**
     * The workgroup tree reduction: after invocation `localIndex` has
     * written slot `localIndex` of every lane's array (`width` slots, a
     * power of two), leaves each lane's total in slot 0, visible to the
     * whole workgroup. Every family that reduces across a workgroup uses it.
     */
    readonly kind: "treeReduce";
    readonly width: number;
    readonly lanes: readonly TreeLane[];
  };

/** One array of a {@link Stmt} `treeReduce` and how two of its values combine. */
export interface TreeLane {
  /** A workgroup array of at least `width` slots. */
  readonly array: string;
  /** `+`, `max`, `min`, or a function `(a, b) -> T` of the lane's element type. */
  readonly combine: "+" | "max" | "min" | KernelFunction;
}

/** A helper function of a kernel (the renderer emits each one once, callees first). */
export interface KernelFunction {
  /** The function's name; two different functions of one kernel must not share it. */
  readonly name: string;
  /** Parameters, in order. */
  readonly params: readonly { readonly name: string; readonly type: ValueType }[];
  /** Absent for a function that returns nothing. */
  readonly returns?: ValueType;
  /** The statements; a function with a result ends in a `return` of it. */
  readonly body: readonly Stmt[];
}

/** How a kernel binds one buffer. */
export interface KernelBuffer {
  /** The array's name in the kernel (also used in error messages). */
  readonly name: string;
  /** `read` buffers are never written. */
  readonly access: "read" | "read_write";
  /** Element type: a scalar (bool is stored as u32) or `vec4f` for vectorised reads. */
  readonly element: "f32" | "i32" | "u32" | "vec4f";
}

/** A workgroup-shared array. */
export interface SharedArray {
  /** The array's name in the kernel. */
  readonly name: string;
  /** Element type. */
  readonly element: "f32" | "i32" | "u32" | "vec4f";
  /** Number of elements (fixed when the kernel is built). */
  readonly length: number;
}

/**
 * One compute kernel: buffers (binding `i` is `buffers[i]`), shared arrays,
 * the workgroup shape, the body each invocation runs, and how many
 * workgroups are dispatched.
 */
export interface KernelProgram {
  /** The kernel family (`elementwise`, `matmul`, `softmax`, ...): the first part of its cache key. */
  readonly family: string;
  /** The graph node(s) it computes, for error messages. */
  readonly label: string;
  /** A one-line description kept in the rendered source (sizes, layout). */
  readonly comment?: string;
  /** Buffer `i` is binding `i`. */
  readonly buffers: readonly KernelBuffer[];
  /** Workgroup-shared arrays. */
  readonly shared: readonly SharedArray[];
  /** Invocations per workgroup along x, y, z. */
  readonly workgroupSize: readonly [number, number, number];
  /** Workgroups dispatched along x, y, z. */
  readonly dispatch: readonly [number, number, number];
  /** What every invocation runs. */
  readonly body: readonly Stmt[];
}
