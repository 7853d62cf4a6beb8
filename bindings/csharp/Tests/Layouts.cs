// Prints what the binding declares, for bindings/check_layouts.py to
// compare with the C compiler: each struct's size and field offsets as the
// marshaller lays them out, each DllImport's and callback delegate's
// parameter and result kinds and sizes, and each constant. Compiled together with Runtime/*.cs.
using System;
using System.Linq;
using System.Reflection;
using System.Runtime.InteropServices;
using Veltix.Interop;

internal static class Layouts
{
    private static int Main()
    {
        var assembly = typeof(Native).Assembly;
        foreach (var type in assembly.GetTypes().Where(t => t.IsValueType && t.Name.StartsWith("veltix_")))
        {
            Console.WriteLine("{0} {1}", type.Name, Marshal.SizeOf(type));
            foreach (var field in type.GetFields(BindingFlags.Public | BindingFlags.Instance))
            {
                Console.WriteLine("{0}.{1} {2}", type.Name, field.Name, Marshal.OffsetOf(type, field.Name));
            }
        }
        var methods = typeof(Native).GetMethods(BindingFlags.Static | BindingFlags.NonPublic);
        foreach (var method in methods.Where(m => m.GetCustomAttributes(typeof(DllImportAttribute), false).Length > 0))
        {
            var parameters = method.GetParameters().Select(p => Shape(p.ParameterType, p));
            Console.WriteLine("fn {0}({1})->{2}", method.Name, string.Join(",", parameters),
                Shape(method.ReturnType, method.ReturnParameter));
        }
        foreach (var callback in assembly.GetTypes().Where(t => typeof(Delegate).IsAssignableFrom(t) && t.Name.StartsWith("veltix_")))
        {
            var invoke = callback.GetMethod("Invoke");
            var parameters = invoke.GetParameters().Select(p => Shape(p.ParameterType, p));
            Console.WriteLine("cb {0}({1})->{2}", callback.Name, string.Join(",", parameters),
                Shape(invoke.ReturnType, invoke.ReturnParameter));
        }
        foreach (var constant in typeof(Native).GetFields(BindingFlags.Static | BindingFlags.NonPublic)
                     .Where(f => f.IsLiteral && f.Name.StartsWith("VELTIX_")))
        {
            Console.WriteLine("const {0} {1}", constant.Name, constant.GetRawConstantValue());
        }
        return 0;
    }

    /// <summary>The kind letter and size of a parameter or result, as C sees it.</summary>
    private static string Shape(Type type, ParameterInfo parameter)
    {
        if (type == typeof(void))
        {
            return "v0";
        }
        if (type.IsByRef || type.IsArray || type == typeof(IntPtr) || typeof(SafeHandle).IsAssignableFrom(type)
            || typeof(Delegate).IsAssignableFrom(type) || type == typeof(string))
        {
            return "p" + IntPtr.Size;
        }
        if (type == typeof(bool))
        {
            var marshal = (MarshalAsAttribute)parameter.GetCustomAttributes(typeof(MarshalAsAttribute), false).FirstOrDefault();
            return "b" + (marshal != null && marshal.Value == UnmanagedType.U1 ? 1 : 4);
        }
        if (type == typeof(UIntPtr))
        {
            return "u" + IntPtr.Size;
        }
        if (type == typeof(float) || type == typeof(double))
        {
            return "f" + Marshal.SizeOf(type);
        }
        var signed = type == typeof(sbyte) || type == typeof(short) || type == typeof(int) || type == typeof(long);
        return (signed ? "i" : "u") + Marshal.SizeOf(type);
    }
}
